import { createCipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Profile } from '../profile';
import { BackupError, type BackupErrorCode } from './backup-error';
import { openBackupFile } from './open-backup';
import { backupFileDigest, writeBackupFile } from './write-backup';
import { encodeHeader, HEADER_LENGTH, MIN_FILE_LENGTH, TAG_LENGTH } from './file-format';
import { encodeFrame, FrameType } from './frames';
import { collectBackup, restoreProfile } from './profile-backup';
import { deriveBackupFileKeys, generateRecoveryKey, type BackupFileKeys } from './recovery-key';
import { createSampleProfile, type SampleProfile } from './testing/sample-profile';

/** Every file under dir with a digest of its contents, to show a profile did not change. */
function snapshot(dir: string): Record<string, string> {
  if (!existsSync(dir)) return {};
  const files: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else files[relative(dir, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(dir);
  return files;
}

describe('backup file', () => {
  const work = mkdtempSync(join(tmpdir(), 'sotto-backup-file-'));
  const recoveryKey = generateRecoveryKey();
  let sample: SampleProfile;
  let keys: BackupFileKeys;
  let good: Buffer;
  let target: Profile;
  let targetBefore: Record<string, string>;
  let counter = 0;

  beforeAll(async () => {
    sample = await createSampleProfile(join(work, 'source'), 500);
    keys = deriveBackupFileKeys(recoveryKey, sample.account.accountId);
    await writeBackupFile(join(work, 'good.bak'), collectBackup(sample.profile), keys);
    good = readFileSync(join(work, 'good.bak'));
    // The new device already registered: account.json is there, nothing else.
    target = Profile.create(join(work, 'target'));
    target.writeJson('account.json', { ...sample.account, deviceId: 2, deviceSecret: 'new-secret' });
    targetBefore = snapshot(target.dir);
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  function fileWith(bytes: Buffer): string {
    const path = join(work, `case-${++counter}.bak`);
    writeFileSync(path, bytes);
    return path;
  }

  /** Opens and restores; returns the refusal, having checked the target profile is as it was. */
  async function refusal(path: string, withKeys = keys): Promise<BackupError> {
    let caught: unknown;
    try {
      await restoreProfile(target, await openBackupFile(path, withKeys));
    } catch (error) {
      caught = error;
    }
    expect(snapshot(target.dir)).toEqual(targetBefore);
    if (!(caught instanceof BackupError)) throw new Error(`expected a BackupError, got ${String(caught)}`);
    return caught;
  }

  it('reports the size and SHA-256 of what it wrote, and never writes the same bytes twice', async () => {
    const path = join(work, 'digest.bak');
    const digest = await writeBackupFile(path, collectBackup(sample.profile), keys);
    const bytes = readFileSync(path);
    expect(digest.size).toBe(bytes.length);
    expect(Buffer.from(digest.sha256).toString('hex')).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(await backupFileDigest(path)).toEqual(digest);
    // A fresh IV every time: same contents, same key, different file.
    expect(bytes.equals(good)).toBe(false);
    expect(bytes).toHaveLength(good.length);
  });

  it('holds no plaintext: no message, username, identity or device secret in clear', () => {
    const text = good.toString('latin1');
    const [first] = sample.profile.history();
    expect(first?.kind).toBe('message');
    const firstText = first?.kind === 'message' ? first.text : undefined;
    expect(text).not.toContain(firstText?.slice(0, 12));
    expect(text).not.toContain(sample.account.username);
    expect(text).not.toContain(sample.account.accountId);
    expect(text).not.toContain(sample.account.deviceSecret);
    expect(good.includes(Buffer.from(sample.account.identityKeyPair, 'base64').subarray(0, 16))).toBe(false);
  });

  it('opens with the right key, leaving nothing on disk but the backup', async () => {
    const opened = await openBackupFile(join(work, 'good.bak'), keys);
    expect(opened.account.accountId).toBe(sample.account.accountId);
    expect(readdirSync(work).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  });

  const size = (): number => good.length;
  const flips: [string, () => number, BackupErrorCode][] = [
    ['the first byte (magic)', () => 0, 'NOT_A_BACKUP'],
    ['the format version', () => 8, 'UNSUPPORTED_VERSION'],
    ['the first IV byte', () => 9, 'DAMAGED'],
    ['the last IV byte', () => 24, 'DAMAGED'],
    ['the first key-check byte', () => 25, 'WRONG_KEY'],
    ['the last header byte', () => HEADER_LENGTH - 1, 'WRONG_KEY'],
    ['the first ciphertext byte', () => HEADER_LENGTH, 'DAMAGED'],
    ['a byte in the middle', () => Math.floor(size() / 2), 'DAMAGED'],
    ['the last ciphertext byte', () => size() - TAG_LENGTH - 1, 'DAMAGED'],
    ['the first tag byte', () => size() - TAG_LENGTH, 'DAMAGED'],
    ['the last byte (tag)', () => size() - 1, 'DAMAGED'],
  ];

  it.each(flips)('refuses a bit flipped in %s, restoring nothing', async (_where, position, code) => {
    for (const bit of [0x01, 0x80]) {
      const bytes = Buffer.from(good);
      bytes[position()] ^= bit;
      const error = await refusal(fileWith(bytes));
      expect(error.code).toBe(code);
      expect(error.message.length).toBeGreaterThan(20);
    }
  });

  it.each([
    ['to nothing', () => 0, 'TRUNCATED'],
    ['inside the magic', () => 5, 'TRUNCATED'],
    ['to the header', () => HEADER_LENGTH, 'TRUNCATED'],
    ['to one byte under the smallest backup', () => MIN_FILE_LENGTH - 1, 'TRUNCATED'],
    ['to half', () => Math.floor(size() / 2), 'DAMAGED'],
    ['by one AES block', () => size() - 16, 'DAMAGED'],
    ['by the whole tag', () => size() - TAG_LENGTH, 'DAMAGED'],
    ['by one byte', () => size() - 1, 'DAMAGED'],
  ])('refuses a file cut %s', async (_how, length, code) => {
    expect((await refusal(fileWith(good.subarray(0, length())))).code).toBe(code);
  });

  it.each([
    ['one byte', Buffer.from([0])],
    ['one AES block', Buffer.alloc(16)],
    ['a second tag', () => good.subarray(size() - TAG_LENGTH)],
    ['the whole backup again', () => good],
  ])('refuses a file extended by %s', async (_what, extra) => {
    const tail = typeof extra === 'function' ? extra() : extra;
    expect((await refusal(fileWith(Buffer.concat([good, tail])))).code).toBe('DAMAGED');
  });

  it('refuses the body and tag of another backup under the same key behind this header', async () => {
    const path = join(work, 'other.bak');
    await writeBackupFile(path, collectBackup(sample.profile), keys);
    const other = readFileSync(path);
    const spliced = Buffer.concat([good.subarray(0, HEADER_LENGTH), other.subarray(HEADER_LENGTH)]);
    expect((await refusal(fileWith(spliced))).code).toBe('DAMAGED');
  });

  it('refuses a wrong recovery key, and the right key of another account', async () => {
    const path = join(work, 'good.bak');
    const wrongKey = await refusal(
      path,
      deriveBackupFileKeys(generateRecoveryKey(), sample.account.accountId),
    );
    expect(wrongKey.code).toBe('WRONG_KEY');
    expect(wrongKey.message).toMatch(/recovery key does not open this backup/);
    const otherAccount = deriveBackupFileKeys(recoveryKey, '0b3c8b5e-1c1a-4f7e-9a55-3f4a2b1c0d9e');
    expect((await refusal(path, otherAccount)).code).toBe('WRONG_KEY');
  });

  it('refuses a format version it does not know, naming it', async () => {
    const bytes = Buffer.from(good);
    bytes[8] = 2;
    const error = await refusal(fileWith(bytes));
    expect(error.code).toBe('UNSUPPORTED_VERSION');
    expect(error.message).toMatch(/version 2 is not supported/);
  });

  it('refuses a file that is not a backup', async () => {
    expect((await refusal(fileWith(randomBytes(4096)))).code).toBe('NOT_A_BACKUP');
    expect((await refusal(fileWith(Buffer.from('{"history": []}\n')))).code).toBe('NOT_A_BACKUP');
  });

  /** A file with a valid tag around any plaintext: what only a holder of the keys can make. */
  function authentic(compressed: Buffer): string {
    const iv = randomBytes(16);
    const cipher = createCipheriv('aes-256-cbc', keys.aesKey, iv);
    const body = Buffer.concat([encodeHeader(keys, iv), cipher.update(compressed), cipher.final()]);
    return fileWith(Buffer.concat([body, createHmac('sha256', keys.hmacKey).update(body).digest()]));
  }

  it('tells unreadable authentic contents (MALFORMED) from tampering (DAMAGED), so a tampered file is never parsed', async () => {
    // Were a tampered file decompressed or parsed, these are the errors it would give.
    expect((await refusal(authentic(Buffer.from('not gzip at all')))).code).toBe('MALFORMED');
    expect((await refusal(authentic(gzipSync(Buffer.from([1, 0, 0]))))).code).toBe('MALFORMED');
    expect((await refusal(authentic(gzipSync(encodeFrame(FrameType.Manifest, '{"account": 1}'))))).code).toBe(
      'MALFORMED',
    );
    const manifest = encodeFrame(
      FrameType.Manifest,
      JSON.stringify({
        account: { username: 'x', accountId: sample.account.accountId },
        contacts: [],
      }),
    );
    const unknownRecord = gzipSync(Buffer.concat([manifest, encodeFrame(7 as FrameType, '{}')]));
    expect((await refusal(authentic(unknownRecord))).code).toBe('MALFORMED');
    const cutLine = gzipSync(Buffer.concat([manifest, encodeFrame(FrameType.History, '{"kind":')]));
    expect((await refusal(authentic(cutLine))).code).toBe('MALFORMED');
  });

  it('restores nothing when the file changes after it was opened', async () => {
    const path = fileWith(good);
    const opened = await openBackupFile(path, keys);
    const bytes = Buffer.from(good);
    bytes[Math.floor(bytes.length / 2)] ^= 0x10;
    writeFileSync(path, bytes);
    let caught: unknown;
    try {
      await restoreProfile(target, opened);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(BackupError);
    expect(['DAMAGED', 'MALFORMED']).toContain((caught as BackupError).code);
    expect(snapshot(target.dir)).toEqual(targetBefore);
  });

  it('restores nothing when the file is swapped after it was opened for one that parses but fails the tag', async () => {
    // Another backup's header and ciphertext behind this one's tag: every record reads,
    // and only the tag computed again on the second pass can tell.
    const path = fileWith(good);
    const opened = await openBackupFile(path, keys);
    const otherPath = join(work, 'swap.bak');
    await writeBackupFile(otherPath, collectBackup(sample.profile), keys);
    const other = readFileSync(otherPath);
    writeFileSync(
      path,
      Buffer.concat([other.subarray(0, other.length - TAG_LENGTH), good.subarray(size() - TAG_LENGTH)]),
    );
    let caught: unknown;
    try {
      await restoreProfile(target, opened);
    } catch (error) {
      caught = error;
    }
    expect((caught as BackupError).code).toBe('DAMAGED');
    expect(snapshot(target.dir)).toEqual(targetBefore);
  });
});
