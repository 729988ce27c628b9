import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { authorizationMetadata } from '@sotto/client-sdk';
import { envelopesTopic } from '@sotto/contracts';
import {
  MessagingServiceClient,
  type ConnectResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import {
  gatewayCredentials,
  operatorDatabaseUrl,
  startTestPlatform,
  testRedis,
  topicRecords,
  type Platform,
} from '@sotto/testing';
import { sottoLinking, sottoWith, succeeded, type Linking } from './testing/sotto';

const lines = (stdout: string): string[] => stdout.trimEnd().split('\n');

describe('linked devices with the sotto command', () => {
  let platform: Platform & { databaseUrl: string };
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-devices-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const name = (who: string) => `${who}_${tag}`;
  // The platform's sealed-sender trust root is pinned: contacts who hold each other's profile keys send sealed.
  const env = () => ({ SOTTO_SENDER_CERTIFICATE_TRUST_ROOT: platform.senderCertificateTrustRoot });
  const as = (who: string, ...args: string[]) =>
    sottoWith(env(), '', '--server', platform.gateway, '--profile', join(profiles, who), ...args);
  const accountOf = (who: string) =>
    JSON.parse(readFileSync(join(profiles, who, 'account.json'), 'utf8')) as {
      accountId: string;
      deviceId: number;
      deviceSecret: string;
    };

  /** The devices of `accountId` that the envelope topic holds envelopes for, by their number. */
  const envelopesInKafkaFor = async (accountId: string): Promise<Map<number, number>> => {
    const counts = new Map<number, number>();
    for (const record of await topicRecords(envelopesTopic.TOPIC)) {
      const envelope = envelopesTopic.decodeValue(record.value);
      if (envelope.destinationAccountId !== accountId) continue;
      counts.set(envelope.destinationDeviceId, (counts.get(envelope.destinationDeviceId) ?? 0) + 1);
    }
    return counts;
  };

  /** What a device's Connect stream delivers before it says its queue is empty. */
  const drainedBy = async (device: { accountId: string; deviceId: number; deviceSecret: string }) => {
    const messaging = new MessagingServiceClient(platform.gateway, gatewayCredentials());
    try {
      const stream = messaging.connect(authorizationMetadata(device));
      const delivered: ConnectResponse[] = [];
      await new Promise<void>((resolve, reject) => {
        stream.on('data', (message: ConnectResponse) => {
          if (message.queueEmpty) resolve();
          else delivered.push(message);
        });
        stream.on('error', reject);
      });
      stream.cancel();
      return delivered;
    } finally {
      messaging.close();
    }
  };

  /** Starts `sotto link` for a new profile and resolves once it printed its code. */
  const startLink = (who: string, account: string, ...args: string[]): Promise<Linking> =>
    sottoLinking(
      env(),
      '--server',
      platform.gateway,
      '--profile',
      join(profiles, who),
      'link',
      account,
      ...args,
    );

  /** Links a new profile as a device of `account`, approved from `approver`; the id it got. */
  const link = async (who: string, account: string, approver: string): Promise<number> => {
    const linking = await startLink(who, account, '--wait', '60', '--name', who);
    await succeeded(as(approver, 'devices', 'approve', linking.code));
    const linked = await succeeded(linking.done);
    return Number(/^linked as device (\d+) of /m.exec(linked)?.[1]);
  };

  const withDatabase = async <T>(work: (db: Client) => Promise<T>): Promise<T> => {
    const db = new Client({ connectionString: operatorDatabaseUrl(platform.databaseUrl) });
    await db.connect();
    try {
      return await work(db);
    } finally {
      await db.end();
    }
  };

  beforeAll(async () => {
    // No device-list cache in the relay: a device written into the directory behind its back counts at once.
    platform = await startTestPlatform({ 'message-relay': { DEVICE_LIST_CACHE_TTL_MS: '0' } });
    for (const who of ['alice', 'bob', 'carol']) await succeeded(as(who, 'register', name(who)));
    await succeeded(as('alice', 'send', name('bob'), 'hello Bob'));
    await succeeded(as('carol', 'send', name('bob'), 'hello from Carol'));
    await succeeded(as('bob', 'send', name('carol'), 'hello Carol'));
    const received = await succeeded(as('bob', 'receive'));
    if (!received.includes('hello Bob')) throw new Error(`setup: Bob got ${received}`);
    await succeeded(as('carol', 'receive'));
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('links a second device: the code, the same fingerprint on both, and history when asked', async () => {
    const linking = await startLink('bob2', name('bob'), '--wait', '60', '--name', 'laptop');
    expect(linking.code).toMatch(/^[A-Za-z0-9_-]{88}$/);
    const approved = await as('bob', 'devices', 'approve', linking.code, '--history');
    expect(approved).toEqual({
      code: 0,
      stdout: `fingerprint: ${linking.fingerprint} (the new device shows the same)\napproved device 2\n`,
      stderr: '',
    });
    const linked = await linking.done;
    expect(linked).toMatchObject({ code: 0, stderr: '' });
    expect(lines(linked.stdout).at(-1)).toBe(
      `linked as device 2 of ${name('bob')}; keys are in ${join(profiles, 'bob2')}`,
    );
    expect(await succeeded(as('bob2', 'history'))).toContain(`${name('alice')} → ${name('bob')}: hello Bob`);

    // The same code can't be approved twice.
    const again = await as('bob', 'devices', 'approve', linking.code);
    expect(again).toMatchObject({ code: 1, stdout: '' });
  });

  it('lists both devices, marking the current one', async () => {
    const listed = lines(await succeeded(as('bob2', 'devices', '--json'))).map(
      (line) => JSON.parse(line) as Record<string, unknown>,
    );
    expect(listed).toEqual([
      expect.objectContaining({ deviceId: 1, current: false }),
      expect.objectContaining({ deviceId: 2, name: 'laptop', current: true }),
    ]);
    expect(await succeeded(as('bob', 'devices'))).toMatch(/^\* 1 .*\(this device\)\n {2}2 {2}laptop /);
  });

  it("a contact's message reaches both devices, and the contact is told that bob added a device", async () => {
    const sent = await as('alice', 'send', name('bob'), 'to both of you');
    expect(sent).toMatchObject({ code: 0, stderr: '' });
    expect(sent.stdout).toMatch(
      new RegExp(
        `^\\[[^\\]]+\\] \\*\\*\\* ${name('bob')} added a device \\(device 2\\).*\\nsent to ${name('bob')}\\n$`,
      ),
    );
    for (const device of ['bob', 'bob2']) {
      expect(await succeeded(as(device, 'receive', '--wait', '2'))).toContain(
        `${name('alice')}: to both of you`,
      );
    }
    expect(await succeeded(as('alice', 'history', name('bob')))).toContain(
      `*** ${name('bob')} added a device`,
    );
  });

  it('a message from the second device is in the first one’s history, and tells another contact of the device', async () => {
    await succeeded(as('bob2', 'send', name('carol'), 'from the laptop'));
    expect(await succeeded(as('bob', 'receive', '--wait', '2'))).toBe('');
    expect(await succeeded(as('bob', 'history', name('carol')))).toContain(
      `${name('bob')} → ${name('carol')}: from the laptop`,
    );
    // Carol's list of Bob's devices is the first one: a message from device 2 makes her client fetch it again.
    const received = lines(await succeeded(as('carol', 'receive', '--json'))).map(
      (line) => JSON.parse(line) as Record<string, unknown>,
    );
    expect(received).toEqual([
      { kind: 'device-added', contact: name('bob'), deviceId: 2, at: expect.any(String) as string },
      expect.objectContaining({ from: name('bob'), text: 'from the laptop' }),
    ]);
  });

  it('refuses to encrypt to a device the server added behind the account’s back, sealed or not: nothing for it in Kafka, its mailbox or its stream; the real devices are fine once it is gone', async () => {
    const bob = accountOf('bob');
    // The server side adds device 7 to Bob's account with keys that check out (device 1's, signed by Bob's identity
    // key), a registration id of its own, and no place on the list Bob's devices signed.
    await withDatabase((db) =>
      db.query(
        `INSERT INTO directory.devices (account_id, device_id, registration_id, secret_salt, secret_hash,
           signed_pre_key_id, signed_pre_key, signed_pre_key_signature,
           kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature)
         SELECT account_id, 7, 4242, secret_salt, secret_hash, signed_pre_key_id, signed_pre_key,
                signed_pre_key_signature, kyber_last_resort_key_id, kyber_last_resort_key, kyber_last_resort_signature
           FROM directory.devices WHERE account_id = $1 AND device_id = 1`,
        [bob.accountId],
      ),
    );
    const ghostRefused = {
      code: 1,
      stdout: '',
      stderr: `sotto: ${name('bob')}'s server lists device 7 that ${name('bob')}'s devices did not sign: not sending\n`,
    };
    expect(await as('alice', 'send', name('bob'), 'for the ghost?')).toEqual(ghostRefused);
    // Carol and Bob have written to each other: her client seals by default, and refuses the same.
    expect(await as('carol', 'send', name('bob'), 'sealed, for the ghost?')).toEqual(ghostRefused);

    // Nothing for the ghost in the envelope log (which does hold Bob's real devices' envelopes), nor in
    // its mailbox; nothing reached Bob's real devices either.
    const inKafka = await envelopesInKafkaFor(bob.accountId);
    expect(inKafka.get(1)).toBeGreaterThan(0);
    expect(inKafka.has(7)).toBe(false);
    const redis = testRedis();
    try {
      expect(await redis.keys(`sotto:mailbox:{${bob.accountId}:7}*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    // The ghost holds device 1's credential (its row was copied): its stream opens and has nothing for it.
    expect(await drainedBy({ ...bob, deviceId: 7 })).toEqual([]);
    expect(await succeeded(as('bob', 'receive'))).toBe('');
    for (const sender of ['alice', 'carol'])
      expect(await succeeded(as(sender, 'history', name('bob')))).not.toContain('for the ghost?');

    await withDatabase((db) =>
      db.query('DELETE FROM directory.devices WHERE account_id = $1 AND device_id = 7', [bob.accountId]),
    );
    await succeeded(as('alice', 'send', name('bob'), 'after the ghost'));
    await succeeded(as('carol', 'send', name('bob'), 'sealed, after the ghost'));
    for (const device of ['bob', 'bob2']) {
      const received = lines(await succeeded(as(device, 'receive', '--json'))).map(
        (line) => JSON.parse(line) as Record<string, unknown>,
      );
      expect(received).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ from: name('alice'), text: 'after the ghost' }),
          // Carol's path was the sealed one all along.
          expect.objectContaining({ from: name('carol'), text: 'sealed, after the ghost', sealed: true }),
        ]),
      );
    }
    // Still nothing was ever sent to device 7.
    expect((await envelopesInKafkaFor(bob.accountId)).has(7)).toBe(false);
  });

  it('removes the second device: it can no longer receive, and contacts stop encrypting to it', async () => {
    expect(await as('bob', 'devices', 'remove', '2')).toEqual({
      code: 0,
      stdout: 'removed device 2\n',
      stderr: '',
    });
    const removed = await as('bob2', 'receive');
    expect(removed.code).toBe(1);
    expect(removed.stderr).toMatch(/^sotto: this device is not registered with /);

    const sent = await succeeded(as('alice', 'send', name('bob'), 'only the first now'));
    expect(sent).toContain(`*** ${name('bob')} removed a device (device 2)`);
    expect(await succeeded(as('bob', 'receive'))).toContain(`${name('alice')}: only the first now`);
    expect(await as('bob', 'devices', 'remove', '1')).toMatchObject({
      code: 1,
      stderr: 'sotto: device 1 is this device; remove it from another device of the account\n',
    });
  });

  it('refuses a seventh device', async () => {
    for (let i = 3; i <= 7; i++) await link(`bob${i}`, name('bob'), 'bob');
    expect(lines(await succeeded(as('bob', 'devices')))).toHaveLength(6);
    const seventh = await startLink('bob8', name('bob'), '--wait', '3');
    const approved = await as('bob', 'devices', 'approve', seventh.code);
    expect(approved).toMatchObject({ code: 1, stdout: '' });
    expect(approved.stderr).toContain('already has 6 devices');
    expect(await seventh.done).toMatchObject({
      code: 1,
      stderr: `sotto: no device of ${name('bob')} approved the link in 3 s; run \`sotto link ${name('bob')}\` again for a new code\n`,
    });
  });

  it('refuses a link code that is not one, in one line', async () => {
    expect(await as('bob', 'devices', 'approve', 'not-a-code')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: not a link code: wrong length (was it copied whole?)\n',
    });
  });
});
