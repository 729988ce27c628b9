import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { encodeManifest, type BackupContents } from './contents';
import { encodeHeader, IV_LENGTH } from './file-format';
import { encodeFrame, FrameType, wholeLines } from './frames';
import type { BackupFileKeys } from './recovery-key';

/** What the backup-store is told about an upload. */
export interface BackupFileDigest {
  readonly size: number;
  readonly sha256: Uint8Array;
}

async function* records(contents: BackupContents): AsyncGenerator<Buffer> {
  const { account, contacts, groups } = contents;
  yield encodeFrame(FrameType.Manifest, encodeManifest({ account, contacts, ...(groups && { groups }) }));
  for await (const lines of wholeLines(contents.history)) yield encodeFrame(FrameType.History, lines);
}

/**
 * Writes the backup next to `path` and renames it into place once complete,
 * so a crash never leaves half a backup under the final name.
 */
export async function writeBackupFile(
  path: string,
  contents: BackupContents,
  keys: BackupFileKeys,
): Promise<BackupFileDigest> {
  const iv = randomBytes(IV_LENGTH);
  const header = encodeHeader(keys, iv);
  const mac = createHmac('sha256', keys.hmacKey);
  const sha256 = createHash('sha256');
  let size = 0;
  const temporary = `${path}.${process.pid}.tmp`;
  try {
    await pipeline(
      records(contents),
      createGzip(),
      createCipheriv('aes-256-cbc', keys.aesKey, iv),
      async function* authenticate(ciphertext: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        mac.update(header);
        yield header;
        for await (const chunk of ciphertext) {
          mac.update(chunk);
          yield chunk;
        }
        yield mac.digest();
      },
      async function* measure(file: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of file) {
          sha256.update(chunk);
          size += chunk.length;
          yield chunk;
        }
      },
      createWriteStream(temporary, { flags: 'wx', mode: 0o600 }),
    );
    await rename(temporary, path);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return { size, sha256: new Uint8Array(sha256.digest()) };
}

/** The size and SHA-256 of a file on disk, read as a stream: for resuming or checking an upload. */
export async function backupFileDigest(path: string): Promise<BackupFileDigest> {
  const handle = await open(path, 'r');
  try {
    const sha256 = createHash('sha256');
    let size = 0;
    for await (const chunk of handle.createReadStream({ autoClose: false, highWaterMark: 1024 * 1024 })) {
      const bytes = chunk as Buffer;
      sha256.update(bytes);
      size += bytes.length;
    }
    return { size, sha256: new Uint8Array(sha256.digest()) };
  } finally {
    await handle.close();
  }
}
