import { createDecipheriv, createHmac, timingSafeEqual } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { BackupError } from './backup-error';
import { decodeManifest, type BackupManifest } from './contents';
import { checkHeader, HEADER_LENGTH, TAG_LENGTH } from './file-format';
import { decodeFrames, FrameType, type Frame } from './frames';
import type { BackupFileKeys } from './recovery-key';

const READ_CHUNK = 1024 * 1024;

function hmacOf(keys: BackupFileKeys): ReturnType<typeof createHmac> {
  return createHmac('sha256', keys.hmacKey);
}

interface Opened {
  readonly handle: FileHandle;
  readonly size: number;
  readonly header: Buffer;
  readonly iv: Buffer;
}

async function openChecked(path: string, keys: BackupFileKeys): Promise<Opened> {
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const header = Buffer.alloc(Math.min(size, HEADER_LENGTH));
    await handle.read(header, 0, header.length, 0);
    const { iv } = checkHeader(header, size, keys);
    return { handle, size, header, iv };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

async function storedTag({ handle, size }: Opened): Promise<Buffer> {
  const tag = Buffer.alloc(TAG_LENGTH);
  await handle.read(tag, 0, TAG_LENGTH, size - TAG_LENGTH);
  return tag;
}

function ciphertextStream({ handle, size }: Opened): AsyncIterable<Buffer> {
  return handle.createReadStream({
    start: HEADER_LENGTH,
    end: size - TAG_LENGTH - 1,
    autoClose: false,
    highWaterMark: READ_CHUNK,
  });
}

const damaged = (): BackupError =>
  new BackupError(
    'DAMAGED',
    'the backup failed its integrity check: it was altered, cut short or extended; nothing was restored',
  );

/** The first pass: the tag over the whole file, before anything is decrypted or parsed. */
async function verifyTag(opened: Opened, keys: BackupFileKeys): Promise<void> {
  const mac = hmacOf(keys).update(opened.header);
  for await (const chunk of ciphertextStream(opened)) mac.update(chunk);
  if (!timingSafeEqual(mac.digest(), await storedTag(opened))) throw damaged();
}

/**
 * The second pass: decrypts, decompresses and splits into records. It
 * computes the tag again and throws at the end if the file changed since it
 * was verified, so a consumer that commits only at the end commits nothing
 * but what was authenticated.
 */
async function* readFrames(path: string, keys: BackupFileKeys): AsyncGenerator<Frame> {
  const opened = await openChecked(path, keys);
  try {
    const mac = hmacOf(keys).update(opened.header);
    const plaintext = pipeline(
      ciphertextStream(opened),
      async function* remac(ciphertext: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of ciphertext) {
          mac.update(chunk);
          yield chunk;
        }
      },
      createDecipheriv('aes-256-cbc', keys.aesKey, opened.iv),
      createGunzip(),
      () => undefined,
    );
    try {
      yield* decodeFrames(plaintext);
    } catch (error) {
      if (error instanceof BackupError) throw error;
      throw new BackupError(
        'MALFORMED',
        `the backup's contents are unreadable (${(error as Error).message}); nothing was restored`,
      );
    }
    if (!timingSafeEqual(mac.digest(), await storedTag(opened))) throw damaged();
  } finally {
    await opened.handle.close();
  }
}

/** A verified backup: the account and contacts at hand, the history to stream. */
export interface OpenedBackup extends BackupManifest {
  /**
   * The history as JSON lines, in chunks that end at a line break, read from
   * the file again; throws at the end if the file changed since it was opened.
   */
  history(): AsyncIterable<Buffer>;
}

/**
 * Checks the header and the tag over the whole file, and only then reads the
 * account record. Any failure is a BackupError and nothing was parsed.
 */
export async function openBackupFile(path: string, keys: BackupFileKeys): Promise<OpenedBackup> {
  const opened = await openChecked(path, keys);
  try {
    await verifyTag(opened, keys);
  } finally {
    await opened.handle.close();
  }
  const frames = readFrames(path, keys);
  const first = await frames.next();
  await frames.return(undefined);
  if (first.done || first.value.type !== FrameType.Manifest) {
    throw new BackupError('MALFORMED', "the backup's contents are unreadable: no account record");
  }
  const manifest = decodeManifest(first.value.payload);
  return {
    ...manifest,
    async *history(): AsyncGenerator<Buffer> {
      let manifestSkipped = false;
      for await (const { type, payload } of readFrames(path, keys)) {
        if (!manifestSkipped) {
          manifestSkipped = true;
          continue;
        }
        if (type !== FrameType.History || payload.at(-1) !== 0x0a) {
          throw new BackupError(
            'MALFORMED',
            `the backup's contents are unreadable: a bad record (type ${type})`,
          );
        }
        yield payload;
      }
    },
  };
}
