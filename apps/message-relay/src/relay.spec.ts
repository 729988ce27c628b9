import { randomUUID } from 'node:crypto';
import { status, type ServiceError } from '@grpc/grpc-js';
import { generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import { EnvelopeType, MismatchedDevices } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { RelayServiceClient, type QueuedEnvelope } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { postgresClientConfig } from '@sotto/platform/postgres';
import {
  callerCredentials,
  freePort,
  identityFiles,
  relaySendRequest,
  type TestCluster,
} from '@sotto/testing';
import { Pool } from 'pg';
import {
  mailboxHolding,
  registerAtDirectory,
  startRelayNeighbours,
  type DirectoryAccount,
} from './testing/relay-neighbours';

interface Account {
  accountId: string;
  registrationId: number;
}

describe('message-relay', () => {
  let cluster: TestCluster;
  let directory: DirectoryServiceClient;

  beforeAll(async () => {
    ({ cluster, directory } = await startRelayNeighbours());
  });

  afterAll(async () => {
    directory?.close();
    await cluster?.stop();
  });

  const account = (): Promise<DirectoryAccount> => registerAtDirectory(directory);

  /** A relay of its own consumer group, so what it routes is only what this test waits for. */
  async function relay(
    env: Record<string, string> = {},
  ): Promise<{ client: RelayServiceClient; group: string }> {
    const group = env['KAFKA_CONSUMER_GROUP'] ?? `relay-test-${randomUUID()}`;
    const service = await cluster.start('message-relay', {
      KAFKA_CONSUMER_GROUP: group,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      GRPC_ADDR: `127.0.0.1:${cluster.addresses['message-relay'].grpc.split(':')[1]}`,
      ...env,
    });
    return { client: new RelayServiceClient(service.grpc, callerCredentials('gateway')), group };
  }

  /** A Send to the account's device 1, or to the one `to` names. */
  const send = (
    client: RelayServiceClient,
    from: Account,
    to: Account & { readonly deviceId?: number },
    text: string,
    overrides = {},
  ) => unary(client.send.bind(client), { ...relaySendRequest(from, to, text), ...overrides });

  /** Reads the mailbox until it holds `count` envelopes; routing is asynchronous by design. */
  const mailbox = (client: RelayServiceClient, of: Account, count: number): Promise<QueuedEnvelope[]> =>
    mailboxHolding(client, of.accountId, count);

  it('logs, routes into the mailbox in order, and deletes on acknowledgement', async () => {
    const { client } = await relay();
    try {
      const [alice, bob] = await Promise.all([account(), account()]);
      const sent: string[] = [];
      for (const text of ['one', 'two', 'three']) sent.push(...(await send(client, alice, bob, text)).guids);
      const queued = await mailbox(client, bob, 3);
      expect(queued.map((item) => item.envelope!.guid)).toEqual(sent);
      expect(queued.map((item) => Buffer.from(item.envelope!.content).toString())).toEqual([
        'one',
        'two',
        'three',
      ]);
      expect(queued[0].envelope).toMatchObject({
        sourceAccountId: alice.accountId,
        sourceDeviceId: 1,
        destinationAccountId: bob.accountId,
        destinationDeviceId: 1,
        type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
      });
      expect(sent.every((guid) => /^[0-9a-f]{8}-[0-9a-f]{4}-7/.test(guid))).toBe(true);

      const ack = await unary(client.ack.bind(client), {
        accountId: bob.accountId,
        deviceId: 1,
        guids: sent.slice(0, 2),
      });
      expect(ack).toEqual({ deleted: 2 });
      const rest = await unary(client.readMailbox.bind(client), {
        accountId: bob.accountId,
        deviceId: 1,
        afterSequence: '0',
        limit: 100,
        maxBytes: 0,
      });
      expect(rest.envelopes.map((item) => item.envelope!.guid)).toEqual([sent[2]]);
      expect(rest.drained).toBe(true);
    } finally {
      client.close();
    }
  });

  it('refuses a wrong device list with FAILED_PRECONDITION and the exact lists', async () => {
    const { client } = await relay();
    try {
      const [alice, bob] = await Promise.all([account(), account()]);
      const error = (await send(client, alice, bob, 'hi', {
        envelopes: [
          {
            destinationDeviceId: 1,
            destinationRegistrationId: bob.registrationId + 1,
            type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
            content: Buffer.from('x'),
          },
          {
            destinationDeviceId: 7,
            destinationRegistrationId: 1,
            type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
            content: Buffer.from('x'),
          },
        ],
      }).catch((thrown: unknown) => thrown)) as ServiceError;
      expect(error.code).toBe(status.FAILED_PRECONDITION);
      expect(error.details).toBe('device list mismatch: missing [], extra [7], stale [1]');
      const trailer = error.metadata.get('sotto-mismatched-devices-bin')[0] as Buffer;
      expect(MismatchedDevices.decode(trailer)).toEqual({
        missingDeviceIds: [],
        extraDeviceIds: [7],
        staleDeviceIds: [1],
      });
    } finally {
      client.close();
    }
  });

  describe('batched calls', () => {
    it('answers each Send of a batch on its own, and routes the accepted ones', async () => {
      const { client } = await relay();
      try {
        const [alice, bob] = await Promise.all([account(), account()]);
        const request = (text: string, registrationId = bob.registrationId, content = Buffer.from(text)) =>
          relaySendRequest(alice, { accountId: bob.accountId, registrationId }, content);
        const { outcomes } = await unary(client.sendBatch.bind(client), {
          sends: [
            request('first'),
            request('stale', bob.registrationId + 1),
            request('huge', bob.registrationId, Buffer.alloc(256 * 1024 + 1)),
            request('second'),
          ],
        });
        expect(outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error?.code))).toEqual([
          'ok',
          status.FAILED_PRECONDITION,
          status.RESOURCE_EXHAUSTED,
          'ok',
        ]);
        expect(outcomes[1]?.error?.details).toBe('device list mismatch: missing [], extra [], stale [1]');
        const trailer = outcomes[1]?.error?.trailers.find((t) => t.key === 'sotto-mismatched-devices-bin');
        expect(MismatchedDevices.decode(trailer!.value)).toEqual({
          missingDeviceIds: [],
          extraDeviceIds: [],
          staleDeviceIds: [1],
        });
        const queued = await mailbox(client, bob, 2);
        expect(queued.map((item) => Buffer.from(item.envelope!.content).toString())).toEqual([
          'first',
          'second',
        ]);

        // Read and acknowledged in batches too, alongside another device's calls.
        const { outcomes: pages } = await unary(client.readMailboxBatch.bind(client), {
          reads: [
            { accountId: bob.accountId, deviceId: 1, afterSequence: '0', limit: 1, maxBytes: 0 },
            { accountId: alice.accountId, deviceId: 1, afterSequence: '0', limit: 10, maxBytes: 0 },
            { accountId: bob.accountId, deviceId: 0, afterSequence: '0', limit: 10, maxBytes: 0 },
          ],
        });
        expect(pages[0]?.ok?.envelopes.map((item) => item.envelope!.guid)).toEqual([
          queued[0].envelope!.guid,
        ]);
        expect(pages[0]?.ok?.drained).toBe(false);
        expect(pages[1]?.ok).toEqual({ envelopes: [], drained: true });
        expect(pages[2]?.error?.code).toBe(status.INVALID_ARGUMENT);
        const { outcomes: acks } = await unary(client.ackBatch.bind(client), {
          acks: [
            { accountId: bob.accountId, deviceId: 1, guids: queued.map((item) => item.envelope!.guid) },
            { accountId: alice.accountId, deviceId: 1, guids: [queued[0].envelope!.guid] },
          ],
        });
        // Alice cannot delete what is in Bob's mailbox: her acknowledgement deletes nothing.
        expect(acks.map((outcome) => outcome.ok?.deleted)).toEqual([2, 0]);
        expect(await mailbox(client, bob, 0)).toEqual([]);
      } finally {
        client.close();
      }
    });

    it('refuses a batch of reads whose pages could pass the batch limit, whole', async () => {
      const { client } = await relay();
      try {
        const bob = await account();
        const reads = Array.from({ length: 4 }, () => ({
          accountId: bob.accountId,
          deviceId: 1,
          afterSequence: '0',
          limit: 500,
          maxBytes: 0,
        }));
        await expect(unary(client.readMailboxBatch.bind(client), { reads })).rejects.toMatchObject({
          code: status.RESOURCE_EXHAUSTED,
          details: expect.stringContaining('over the 6291456-byte batch limit') as string,
        });
      } finally {
        client.close();
      }
    });
  });

  describe('device lists', () => {
    const recoveryCredential = () => Buffer.from(randomUUID().replace(/-/g, '').repeat(2), 'hex');

    it('checks a send against the list as the directory has it now, not as the relay cached it', async () => {
      const { client } = await relay();
      try {
        const [alice, bob] = await Promise.all([account(), account()]);
        // The relay now holds Bob's list (device 1).
        await send(client, alice, bob, 'before');

        // Bob recovers his account onto a new device: device 1 is signed out, device 2 is his only one.
        const secret = recoveryCredential();
        await unary(directory.setRecoveryCredential.bind(directory), {
          accountId: bob.accountId,
          recoveryCredential: secret,
          currentRecoveryCredential: Buffer.alloc(0),
        });
        const keys = generateDeviceKeys(1);
        const recovered = await unary(directory.recoverAccount.bind(directory), {
          username: bob.username,
          recoveryCredential: secret,
          identityKey: Buffer.from(keys.identity.publicKey.serialize()),
          device: publicDeviceKeys(keys),
        });
        expect(recovered.deviceId).toBe(2);

        // At once, not after the cache's time to live: the signed-out device gets nothing more.
        await expect(send(client, alice, bob, 'to the old phone')).rejects.toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: 'device list mismatch: missing [2], extra [1], stale []',
        });
        const newPhone = { accountId: bob.accountId, registrationId: keys.registrationId, deviceId: 2 };
        expect((await send(client, alice, newPhone, 'to the new phone')).guids).toHaveLength(1);
      } finally {
        client.close();
      }
    });

    it('asks the directory again before refusing a send that disagrees with a cached list', async () => {
      const { client } = await relay();
      const pool = new Pool({
        ...postgresClientConfig(cluster.databaseUrl, identityFiles('prekey-directory')),
        max: 1,
      });
      try {
        const [alice, bob] = await Promise.all([account(), account()]);
        await send(client, alice, bob, 'cached');
        // A change the relay is never told of: written straight into the directory's database.
        const reinstalled = bob.registrationId === 16380 ? 1 : bob.registrationId + 1;
        await pool.query(
          'UPDATE directory.devices SET registration_id = $2 WHERE account_id = $1 AND device_id = 1',
          [bob.accountId, reinstalled],
        );
        // Until the entry expires, the cached list still lets the old registration id through: what a
        // lost change message costs, bounded by DEVICE_LIST_CACHE_TTL_MS.
        expect((await send(client, alice, bob, 'stale but cached')).guids).toHaveLength(1);
        const current = { ...bob, registrationId: reinstalled };
        expect((await send(client, alice, current, 'after the reinstall')).guids).toHaveLength(1);
      } finally {
        client.close();
        await pool.end();
      }
    });

    it('caches nothing with DEVICE_LIST_CACHE_TTL_MS=0', async () => {
      // On a port of its own: the relays the other tests started answer on the shared one.
      const { client } = await relay({
        DEVICE_LIST_CACHE_TTL_MS: '0',
        GRPC_ADDR: `127.0.0.1:${await freePort()}`,
        METRICS_ADDR: `127.0.0.1:${await freePort()}`,
      });
      const pool = new Pool({
        ...postgresClientConfig(cluster.databaseUrl, identityFiles('prekey-directory')),
        max: 1,
      });
      try {
        const [alice, bob] = await Promise.all([account(), account()]);
        await send(client, alice, bob, 'first');
        await pool.query(
          'UPDATE directory.devices SET registration_id = registration_id + 1 WHERE account_id = $1',
          [bob.accountId],
        );
        await expect(send(client, alice, bob, 'with the old registration id')).rejects.toMatchObject({
          code: status.FAILED_PRECONDITION,
          details: 'device list mismatch: missing [], extra [], stale [1]',
        });
      } finally {
        client.close();
        await pool.end();
      }
    });
  });

  it.each([
    [
      'an envelope over 256 KiB',
      { content: Buffer.alloc(256 * 1024 + 1) },
      status.RESOURCE_EXHAUSTED,
      'envelopes[0].content: 262145 bytes is over the 262144-byte limit',
    ],
    [
      'an empty envelope',
      { content: Buffer.alloc(0) },
      status.INVALID_ARGUMENT,
      'envelopes[0].content: is required',
    ],
    [
      'no envelope type',
      { type: EnvelopeType.ENVELOPE_TYPE_UNSPECIFIED },
      status.INVALID_ARGUMENT,
      'envelopes[0].type: must be a known envelope type',
    ],
  ])('refuses %s', async (_name, change, code, details) => {
    const { client } = await relay();
    try {
      const [alice, bob] = await Promise.all([account(), account()]);
      const envelope = {
        destinationDeviceId: 1,
        destinationRegistrationId: bob.registrationId,
        type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
        content: Buffer.from('x'),
        ...change,
      };
      await expect(send(client, alice, bob, '', { envelopes: [envelope] })).rejects.toMatchObject({
        code,
        details,
      });
    } finally {
      client.close();
    }
  });

  it("lets a sender check its own device list with no envelopes, but not anyone else's", async () => {
    const { client } = await relay();
    try {
      const [alice, bob] = await Promise.all([account(), account()]);
      // Alice has only the device she sends from, so there is nobody to sync to and nothing is logged.
      expect(await send(client, alice, alice, '', { envelopes: [] })).toMatchObject({ guids: [] });
      await expect(send(client, alice, bob, '', { envelopes: [] })).rejects.toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'envelopes: at least one is required',
      });
    } finally {
      client.close();
    }
  });

  it('never queues an ephemeral envelope; an offline device never sees it', async () => {
    const { client } = await relay();
    try {
      const [alice, bob] = await Promise.all([account(), account()]);
      const ephemeral = await send(client, alice, bob, 'typing', { ephemeral: true });
      expect(ephemeral.guids).toHaveLength(1);
      const durable = await send(client, alice, bob, 'after');
      const queued = await mailbox(client, bob, 1);
      expect(queued.map((item) => item.envelope!.guid)).toEqual(durable.guids);
    } finally {
      client.close();
    }
  });

  describe('sealed sends', () => {
    const sealedEnvelope = (
      to: Account,
      text: string,
      type = EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
    ) => ({
      destinationDeviceId: 1,
      destinationRegistrationId: to.registrationId,
      type,
      content: Buffer.from(text),
    });
    const sealed = (client: RelayServiceClient, to: Account, overrides = {}) =>
      unary(client.send.bind(client), {
        sourceAccountId: '',
        sourceDeviceId: 0,
        destinationAccountId: to.accountId,
        clientTimestampMs: String(Date.now()),
        ephemeral: false,
        envelopes: [sealedEnvelope(to, 'sealed')],
        sealed: true,
        ...overrides,
      });

    it('logs and queues a sealed envelope with no source account or device', async () => {
      const { client } = await relay();
      try {
        const bob = await account();
        const { guids } = await sealed(client, bob);
        const [queued] = await mailbox(client, bob, 1);
        expect(queued?.envelope).toMatchObject({
          guid: guids[0],
          sourceAccountId: '',
          sourceDeviceId: 0,
          destinationAccountId: bob.accountId,
          type: EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER,
        });
      } finally {
        client.close();
      }
    });

    it('refuses a sealed send that names a source, carries another envelope type or nothing, and logs nothing', async () => {
      const { client } = await relay();
      try {
        const [alice, bob] = await Promise.all([account(), account()]);
        await expect(
          sealed(client, bob, { sourceAccountId: alice.accountId, sourceDeviceId: 1 }),
        ).rejects.toMatchObject({
          code: status.INVALID_ARGUMENT,
          details: 'source_account_id: must be empty on a sealed send, and source_device_id 0',
        });
        await expect(
          sealed(client, bob, {
            envelopes: [sealedEnvelope(bob, 'x', EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT)],
          }),
        ).rejects.toMatchObject({
          code: status.INVALID_ARGUMENT,
          details: 'envelopes[0].type: a sealed send carries only ENVELOPE_TYPE_UNIDENTIFIED_SENDER',
        });
        await expect(sealed(client, bob, { envelopes: [] })).rejects.toMatchObject({
          code: status.INVALID_ARGUMENT,
          details: 'envelopes: at least one is required',
        });
        // A wrong device list is answered with the lists, as for any send.
        const error = (await sealed(client, bob, {
          envelopes: [sealedEnvelope(bob, 'x'), { ...sealedEnvelope(bob, 'y'), destinationDeviceId: 2 }],
        }).catch((thrown: unknown) => thrown)) as ServiceError;
        expect(error.code).toBe(status.FAILED_PRECONDITION);
        expect(
          MismatchedDevices.decode(error.metadata.get('sotto-mismatched-devices-bin')[0] as Buffer),
        ).toEqual({
          missingDeviceIds: [],
          extraDeviceIds: [2],
          staleDeviceIds: [],
        });
        // Only what came after the refusals reaches the mailbox.
        const { guids } = await send(client, alice, bob, 'after');
        expect((await mailbox(client, bob, 1)).map((item) => item.envelope!.guid)).toEqual(guids);
      } finally {
        client.close();
      }
    });
  });

  it('answers NOT_FOUND for a destination that does not exist', async () => {
    const { client } = await relay();
    try {
      const alice = await account();
      await expect(
        send(client, alice, { accountId: randomUUID(), registrationId: 1 }, 'hi'),
      ).rejects.toMatchObject({
        code: status.NOT_FOUND,
        details: 'account_id: no such account',
      });
    } finally {
      client.close();
    }
  });

  it.each(['crash-before-mailbox', 'crash-before-commit'])(
    'loses nothing and doubles nothing when the relay is SIGKILLed at %s and restarted',
    async (point) => {
      const [alice, bob] = await Promise.all([account(), account()]);
      const doomed = await relay({ SOTTO_FAULT_INJECTION: point });
      const sent: string[] = [];
      try {
        // Kafka acknowledged each of these before Send answered.
        for (const text of ['a', 'b', 'c']) sent.push(...(await send(doomed.client, alice, bob, text)).guids);
      } finally {
        doomed.client.close();
      }
      const replacement = await relay({ KAFKA_CONSUMER_GROUP: doomed.group });
      try {
        const queued = await mailbox(replacement.client, bob, 3);
        // Give a redelivered batch the chance to show up twice before counting.
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        const again = await mailbox(replacement.client, bob, 3);
        expect(queued.map((item) => item.envelope!.guid)).toEqual(sent);
        expect(again.map((item) => item.envelope!.guid)).toEqual(sent);
        expect(again.map((item) => Buffer.from(item.envelope!.content).toString())).toEqual(['a', 'b', 'c']);
      } finally {
        replacement.client.close();
      }
    },
  );
});
