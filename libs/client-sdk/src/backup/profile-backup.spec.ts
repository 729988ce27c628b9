import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Fingerprint, IdentityKeyPair, PublicKey } from '@signalapp/libsignal-client';
import { newGroupId, type GroupState } from '../group-state';
import { Profile } from '../profile';
import { BackupError } from './backup-error';
import { openBackupFile } from './open-backup';
import { writeBackupFile } from './write-backup';
import { collectBackup, restoreProfile, type RestoreSummary } from './profile-backup';
import { deriveBackupFileKeys, generateRecoveryKey, parseRecoveryKey } from './recovery-key';
import { createSampleProfile, type SampleProfile } from './testing/sample-profile';

/** Buffers compared with equals(): Jest's toEqual walks them byte by byte, which takes minutes at this size. */
const sameFile = (a: string, b: string): boolean => readFileSync(a).equals(readFileSync(b));

const uuidBytes = (uuid: string): Uint8Array<ArrayBuffer> =>
  new Uint8Array(Buffer.from(uuid.replace(/-/g, ''), 'hex'));

/** The safety number as SottoClient.safetyNumber computes it, from the keys a profile holds. */
function safetyNumber(profile: Profile, contactId: string): string {
  const account = profile.account();
  const mine = IdentityKeyPair.deserialize(new Uint8Array(Buffer.from(account.identityKeyPair, 'base64')));
  const theirs = PublicKey.deserialize(new Uint8Array(profile.read(`identities/${contactId}`)!));
  return Fingerprint.new(5200, 2, uuidBytes(account.accountId), mine.publicKey, uuidBytes(contactId), theirs)
    .displayableFingerprint()
    .toString();
}

describe('backing up a profile and restoring it on a new device', () => {
  const work = mkdtempSync(join(tmpdir(), 'sotto-profile-backup-'));
  const typedKey = generateRecoveryKey();
  let sample: SampleProfile;
  let restored: Profile;
  let summary: RestoreSummary;
  let group: GroupState;
  const newIdentity = Buffer.from(IdentityKeyPair.generate().serialize()).toString('base64');

  beforeAll(async () => {
    sample = await createSampleProfile(join(work, 'old-phone'), 2_000);
    group = {
      id: newGroupId(),
      title: 'climbing',
      members: [sample.account.accountId, ...sample.contacts.map((contact) => contact.accountId)].sort(),
      admins: [sample.account.accountId],
      version: 3,
    };
    // A group with this device's sender key and one a member sent it: device-level, like sessions.
    const distributionId = '8f5c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f';
    sample.profile.writeJson('groups.json', {
      groups: { [group.id]: { state: group, own: { distributionId, sentTo: ['x.1'] } } },
      received: { [group.id]: { 'x.1': [distributionId] } },
    });
    sample.profile.write(`sender-keys/${sample.account.accountId}.1.${distributionId}`, 'own sender key');
    const keys = deriveBackupFileKeys(typedKey, sample.account.accountId);
    await writeBackupFile(join(work, 'backup.bak'), collectBackup(sample.profile), keys);

    // The new phone: the key as the user types it, the account id from recovery.
    const retyped = parseRecoveryKey(typedKey.toUpperCase().match(/.{4}/g)!.join(' '));
    const opened = await openBackupFile(
      join(work, 'backup.bak'),
      deriveBackupFileKeys(retyped, sample.account.accountId),
    );
    restored = new Profile(join(work, 'new-phone'));
    summary = await restoreProfile(restored, opened);
    // account.json is the new device's own registration, with an identity key of its own.
    restored.writeJson('account.json', {
      ...opened.account,
      identityKeyPair: newIdentity,
      deviceId: 2,
      deviceSecret: 'fresh-secret',
      registrationId: 77,
      nextPreKeyId: 101,
    });
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('reports how many history entries and contacts it restored', () => {
    expect(summary).toEqual({ historyEntries: 2_000, contacts: 3 });
  });

  it('brings back the whole history, in order, byte for byte', () => {
    expect(restored.history()).toEqual(sample.profile.history());
    expect(sameFile(join(restored.dir, 'history.jsonl'), join(sample.profile.dir, 'history.jsonl'))).toBe(
      true,
    );
  });

  it('carries the account, never its identity key pair', async () => {
    const opened = await openBackupFile(
      join(work, 'backup.bak'),
      deriveBackupFileKeys(typedKey, sample.account.accountId),
    );
    expect(opened.account).toEqual({
      username: sample.account.username,
      accountId: sample.account.accountId,
    });
  });

  it('keeps every contact’s name and last known identity key; the safety numbers change with the new identity', () => {
    const contacts = restored.readJson('contacts.json');
    expect(contacts).toEqual({
      byName: Object.fromEntries(sample.contacts.map((contact) => [contact.username, contact.accountId])),
      devices: {},
    });
    for (const contact of sample.contacts.filter((candidate) => candidate.hasSession)) {
      expect(restored.read(`identities/${contact.accountId}`)).toEqual(
        sample.profile.read(`identities/${contact.accountId}`),
      );
      expect(safetyNumber(restored, contact.accountId)).toMatch(/^\d{60}$/);
      expect(safetyNumber(restored, contact.accountId)).not.toBe(
        safetyNumber(sample.profile, contact.accountId),
      );
    }
    const withoutSession = sample.contacts.find((candidate) => !candidate.hasSession)!;
    expect(restored.read(`identities/${withoutSession.accountId}`)).toBeUndefined();
  });

  it('keeps the groups, as states only: the new device makes its own sender keys', () => {
    expect(restored.readJson('groups.json')).toEqual({
      groups: { [group.id]: { state: group } },
      received: {},
    });
  });

  it('carries nothing of the old device: no sessions, prekeys, sender keys, seen GUIDs or secret', () => {
    expect(readdirSync(sample.profile.dir)).toEqual(
      expect.arrayContaining([
        'sessions',
        'prekeys',
        'signed-prekeys',
        'kyber-prekeys',
        'sender-keys',
        'seen-guids.log',
      ]),
    );
    expect(readdirSync(restored.dir).sort()).toEqual([
      'account.json',
      'contacts.json',
      'groups.json',
      'history.jsonl',
      'identities',
    ]);
    const files = readdirSync(restored.dir, { recursive: true, withFileTypes: true })
      .filter((entry) => entry.isFile())
      .map((entry) => readFileSync(join(entry.parentPath, entry.name), 'utf8'));
    expect(files.join('\n')).not.toContain(sample.account.deviceSecret);
  });

  it('refuses a profile that already has history, and one of another account, changing neither', async () => {
    const keys = deriveBackupFileKeys(typedKey, sample.account.accountId);
    const opened = await openBackupFile(join(work, 'backup.bak'), keys);

    const busy = Profile.create(join(work, 'busy'));
    busy.appendHistory({ kind: 'safety-number-changed', contact: 'x', at: new Date(0).toISOString() });
    const busyHistory = readFileSync(join(busy.dir, 'history.jsonl'));
    await expect(restoreProfile(busy, opened)).rejects.toMatchObject({ code: 'PROFILE_NOT_EMPTY' });
    expect(readFileSync(join(busy.dir, 'history.jsonl'))).toEqual(busyHistory);
    expect(readdirSync(busy.dir)).toEqual(['history.jsonl']);

    const other = await createSampleProfile(join(work, 'other'), 0);
    const error = await restoreProfile(other.profile, opened).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BackupError);
    expect((error as BackupError).code).toBe('PROFILE_NOT_EMPTY');
    expect((error as BackupError).message).toContain(other.account.username);

    await expect(restoreProfile(restored, opened)).rejects.toMatchObject({ code: 'PROFILE_NOT_EMPTY' });
    expect(restored.history()).toHaveLength(2_000);
  });
});

describe('a large backup', () => {
  const work = mkdtempSync(join(tmpdir(), 'sotto-large-backup-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('round trips 50,000 history entries', async () => {
    const sample = await createSampleProfile(join(work, 'old'), 50_000);
    const keys = deriveBackupFileKeys(generateRecoveryKey(), sample.account.accountId);
    const digest = await writeBackupFile(join(work, 'large.bak'), collectBackup(sample.profile), keys);
    // Compressed: chat text takes well under half its size.
    expect(digest.size).toBeLessThan(readFileSync(join(sample.profile.dir, 'history.jsonl')).length / 2);
    const restored = new Profile(join(work, 'new'));
    const summary = await restoreProfile(restored, await openBackupFile(join(work, 'large.bak'), keys));
    expect(summary.historyEntries).toBe(50_000);
    expect(sameFile(join(restored.dir, 'history.jsonl'), join(sample.profile.dir, 'history.jsonl'))).toBe(
      true,
    );
  });
});
