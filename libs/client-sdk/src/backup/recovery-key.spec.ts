import { BackupError } from './backup-error';
import {
  deriveAccountRecoveryCredential,
  deriveBackupFileKeys,
  deriveVaultRecoveryProof,
  generateRecoveryKey,
  parseRecoveryKey,
  type RecoveryKey,
} from './recovery-key';

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

function refusal(typed: string): BackupError {
  try {
    parseRecoveryKey(typed);
  } catch (error) {
    if (error instanceof BackupError) return error;
    throw error;
  }
  throw new Error(`${JSON.stringify(typed)} was accepted`);
}

describe('recovery key', () => {
  it('is 64 lower-case letters and digits, new every time', () => {
    const keys = new Set(Array.from({ length: 20 }, () => generateRecoveryKey()));
    expect(keys.size).toBe(20);
    for (const key of keys) {
      expect(key).toMatch(/^[a-z0-9]{64}$/);
      expect(parseRecoveryKey(key)).toBe(key);
    }
  });

  it('accepts a key typed in capitals, in groups, over several lines', () => {
    const key = generateRecoveryKey();
    const grouped = key.toUpperCase().match(/.{4}/g)!.join(' ');
    expect(parseRecoveryKey(`  ${grouped}\n`)).toBe(key);
    expect(parseRecoveryKey(key.match(/.{16}/g)!.join('-\n'))).toBe(key);
  });

  it.each([
    ['empty', '', /64 letters and digits; this one has 0/],
    ['one short', 'a'.repeat(63), /this one has 63/],
    ['one long', 'a'.repeat(65), /this one has 65/],
    ['punctuation', `${'a'.repeat(63)}!`, /"!" is not one/],
    ['an accented letter', `${'a'.repeat(63)}é`, /"é" is not one/],
    ['a password', 'correct horse battery staple', /this one has 25/],
  ])('refuses %s, saying why', (_case, typed, message) => {
    const error = refusal(typed);
    expect(error.code).toBe('INVALID_RECOVERY_KEY');
    expect(error.message).toMatch(message);
  });

  it('never puts the typed text in a refusal beyond the offending character', () => {
    const typed = `${generateRecoveryKey().slice(0, 40)}#`;
    expect(refusal(typed).message).not.toContain(typed.slice(0, 10));
  });
});

describe('derivation', () => {
  // Pinned once: a change here breaks every existing backup and vault record.
  const key = parseRecoveryKey('sottobackuptestvector0123456789abcdefghijklmnopqrstuvwxyz0000000');
  const accountId = '6f1c2b9e-4d3a-4f8b-9c7e-2a5d8e1f0b3c';

  it('gives the pinned account recovery credential (libsignal registration recovery password)', () => {
    expect(hex(deriveAccountRecoveryCredential(key))).toBe(
      '204ac87cb706260f0cc892cb02a23ac4e1c0fbc6f58ec154749775536e809dc2',
    );
  });

  it('gives the pinned vault recovery proof (HKDF-SHA256, "sotto vault recovery proof v1")', () => {
    expect(hex(deriveVaultRecoveryProof(key))).toBe(
      '5ce794abe2d9f7dd5f084baaee2b1dddabad4cb21d86c43d5dd6d37464b7fb3f',
    );
  });

  it('gives the pinned backup file keys (libsignal MessageBackupKey for the account)', () => {
    const keys = deriveBackupFileKeys(key, accountId);
    expect(hex(keys.aesKey)).toBe('5eea23840b76d5089cc7324682f8929d9b80cdd1d51e5a039855ab8b8447440f');
    expect(hex(keys.hmacKey)).toBe('85f3b579c2d2412ce52a7d7808e3b2051f779b2f8880c067ee9806981d527bc0');
    expect(deriveBackupFileKeys(key, accountId.toUpperCase())).toEqual(keys);
  });

  it('keeps every secret apart: per purpose, per account and per recovery key', () => {
    const other = generateRecoveryKey();
    const secrets = [
      deriveAccountRecoveryCredential(key),
      deriveVaultRecoveryProof(key),
      deriveBackupFileKeys(key, accountId).aesKey,
      deriveBackupFileKeys(key, accountId).hmacKey,
      deriveBackupFileKeys(key, '0b3c8b5e-1c1a-4f7e-9a55-3f4a2b1c0d9e').aesKey,
      deriveBackupFileKeys(key, '0b3c8b5e-1c1a-4f7e-9a55-3f4a2b1c0d9e').hmacKey,
      deriveAccountRecoveryCredential(other),
      deriveVaultRecoveryProof(other),
      deriveBackupFileKeys(other, accountId).aesKey,
    ].map(hex);
    expect(new Set(secrets).size).toBe(secrets.length);
    for (const secret of secrets) expect(secret).toHaveLength(64);
  });

  it('refuses an account id that is not a UUID', () => {
    expect(() => deriveBackupFileKeys(key, 'alice')).toThrow(
      expect.objectContaining({ code: 'INVALID_ACCOUNT_ID' }) as Error,
    );
  });

  it('is the same for the same key typed differently', () => {
    const typed: RecoveryKey = parseRecoveryKey(key.toUpperCase().match(/.{8}/g)!.join(' '));
    expect(hex(deriveVaultRecoveryProof(typed))).toBe(hex(deriveVaultRecoveryProof(key)));
  });
});
