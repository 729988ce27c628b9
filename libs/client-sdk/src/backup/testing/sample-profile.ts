import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  IdentityKeyPair,
  KyberPreKeyRecord,
  PreKeyBundle,
  PreKeyRecord,
  ProtocolAddress,
  SignedPreKeyRecord,
  processPreKeyBundle,
} from '@signalapp/libsignal-client';
import { generateDeviceKeys, LAST_RESORT_KYBER_ID } from '../../keys';
import { Profile, type AccountFile, type HistoryEntry } from '../../profile';
import {
  ProfileIdentityStore,
  ProfileKyberPreKeyStore,
  ProfilePreKeyStore,
  ProfileSessionStore,
  ProfileSignedPreKeyStore,
} from '../../signal-stores';

/*
 * A profile as SottoClient leaves it after some chatting, made with the same
 * libsignal stores and key generation but without a server: real prekeys,
 * real sessions with contacts, their identity keys, seen GUIDs and history.
 * For the backup specs and the benchmark.
 */

export interface SampleContact {
  readonly username: string;
  readonly accountId: string;
  readonly identity: IdentityKeyPair;
  /** A contact looked up by name but never messaged has no session and no identity key here. */
  readonly hasSession: boolean;
}

export interface SampleProfile {
  readonly profile: Profile;
  readonly account: AccountFile;
  readonly contacts: readonly SampleContact[];
}

const LETTERS = 'etaoinshrdlucmfwypvbgkjqxz';
const SPECIAL = [
  '🚆',
  '👍',
  '❤️',
  '日本語',
  '« ça va »',
  '"quoted"',
  'back\\slash',
  'tab\there',
  'line\nbreak',
  '?',
  '!',
];

/** A vocabulary of pseudo-words, letters skewed towards the common ones, so text compresses about like chat. */
function vocabulary(random: Buffer): string[] {
  const words = [...SPECIAL];
  let at = 0;
  const next = (): number => random[at++ % random.length];
  while (words.length < 3000) {
    const length = 1 + (next() % 9);
    let word = '';
    for (let index = 0; index < length; index++) word += LETTERS[Math.min(next(), next()) % LETTERS.length];
    words.push(word);
  }
  return words;
}

/** Chat-like text of 3 to 32 words. */
function sampleText(words: readonly string[], random: Buffer, at: number): string {
  const length = 3 + (random[at % random.length] % 30);
  const picked: string[] = [];
  for (let index = 0; index < length; index++) {
    const pick = random.readUInt16LE((at + 2 * index) % (random.length - 1));
    picked.push(words[pick % words.length]);
  }
  return picked.join(' ');
}

function sampleHistoryEntry(
  index: number,
  me: string,
  contacts: readonly string[],
  words: readonly string[],
  random: Buffer,
): HistoryEntry {
  const contact = contacts[index % contacts.length];
  const at = new Date(Date.UTC(2024, 0, 1) + index * 61_000).toISOString();
  if (index % 997 === 996) return { kind: 'safety-number-changed', contact, at };
  const outgoing = index % 3 === 0;
  return {
    kind: 'message',
    direction: outgoing ? 'out' : 'in',
    from: outgoing ? me : contact,
    to: outgoing ? contact : me,
    text: index % 50 === 0 ? SPECIAL.join(' ') : sampleText(words, random, index * 64),
    sentAt: at,
    guid: randomUUID(),
  };
}

/** Streams `entries` history entries into history.jsonl; returns its size in bytes. */
export async function writeSampleHistory(
  profile: Profile,
  entries: number,
  contacts: readonly string[],
): Promise<number> {
  const me = profile.account().username;
  const random = randomBytes(256 * 1024);
  const words = vocabulary(random);
  let bytes = 0;
  function* lines(): Generator<string> {
    let batch = '';
    for (let index = 0; index < entries; index++) {
      batch += `${JSON.stringify(sampleHistoryEntry(index, me, contacts, words, random))}\n`;
      if (batch.length >= 256 * 1024 || index === entries - 1) {
        bytes += Buffer.byteLength(batch);
        yield batch;
        batch = '';
      }
    }
  }
  await pipeline(lines(), createWriteStream(join(profile.dir, 'history.jsonl'), { flags: 'a', mode: 0o600 }));
  return bytes;
}

function bytes(data: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(data);
}

/** A session with a contact's device, from its prekey bundle, as SottoClient.establish makes one. */
async function startSession(
  sessions: ProfileSessionStore,
  identities: ProfileIdentityStore,
  local: ProtocolAddress,
  contact: SampleContact,
): Promise<void> {
  const keys = generateDeviceKeys(1, contact.identity);
  const oneTime = keys.oneTimeEc[0];
  const bundle = PreKeyBundle.new(
    keys.registrationId,
    1,
    oneTime.keyId,
    oneTime.privateKey.getPublicKey(),
    keys.signedPreKey.keyId,
    keys.signedPreKey.privateKey.getPublicKey(),
    bytes(keys.signedPreKey.signature),
    contact.identity.publicKey,
    keys.kyberLastResort.keyId,
    keys.kyberLastResort.keyPair.getPublicKey(),
    bytes(keys.kyberLastResort.signature),
  );
  await processPreKeyBundle(bundle, ProtocolAddress.new(contact.accountId, 1), local, sessions, identities);
}

export async function createSampleProfile(dir: string, historyEntries: number): Promise<SampleProfile> {
  const profile = Profile.create(dir);
  const keys = generateDeviceKeys(5);
  const account: AccountFile = {
    username: `alice_${randomUUID().slice(0, 8)}`,
    accountId: randomUUID(),
    deviceId: 1,
    deviceSecret: `secret-${randomUUID()}`,
    registrationId: keys.registrationId,
    identityKeyPair: Buffer.from(keys.identity.serialize()).toString('base64'),
    nextPreKeyId: 6,
  };
  profile.writeJson('account.json', account);

  const now = Date.now();
  await new ProfileSignedPreKeyStore(profile).saveSignedPreKey(
    keys.signedPreKey.keyId,
    SignedPreKeyRecord.new(
      keys.signedPreKey.keyId,
      now,
      keys.signedPreKey.privateKey.getPublicKey(),
      keys.signedPreKey.privateKey,
      bytes(keys.signedPreKey.signature),
    ),
  );
  await new ProfileKyberPreKeyStore(profile, LAST_RESORT_KYBER_ID).saveKyberPreKey(
    LAST_RESORT_KYBER_ID,
    KyberPreKeyRecord.new(
      LAST_RESORT_KYBER_ID,
      now,
      keys.kyberLastResort.keyPair,
      bytes(keys.kyberLastResort.signature),
    ),
  );
  for (const key of keys.oneTimeEc) {
    await new ProfilePreKeyStore(profile).savePreKey(
      key.keyId,
      PreKeyRecord.new(key.keyId, key.privateKey.getPublicKey(), key.privateKey),
    );
  }

  const contacts: SampleContact[] = ['bob', 'carol', 'dave'].map((name, index) => ({
    username: `${name}_${randomUUID().slice(0, 8)}`,
    accountId: randomUUID(),
    identity: IdentityKeyPair.generate(),
    hasSession: index < 2,
  }));
  const sessions = new ProfileSessionStore(profile);
  const identities = new ProfileIdentityStore(profile, keys.identity, keys.registrationId, () => undefined);
  const local = ProtocolAddress.new(account.accountId, account.deviceId);
  for (const contact of contacts.filter((candidate) => candidate.hasSession)) {
    await startSession(sessions, identities, local, contact);
  }
  profile.writeJson('contacts.json', {
    byName: Object.fromEntries(contacts.map((contact) => [contact.username, contact.accountId])),
    devices: Object.fromEntries(
      contacts.filter((contact) => contact.hasSession).map((contact) => [contact.accountId, [1]]),
    ),
  });
  for (let index = 0; index < 3; index++) profile.markSeen(randomUUID());
  await writeSampleHistory(
    profile,
    historyEntries,
    contacts.map((contact) => contact.username),
  );
  return { profile, account, contacts };
}
