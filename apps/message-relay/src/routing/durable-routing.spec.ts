import { randomUUID } from 'node:crypto';
import { Partitioners, type Admin } from 'kafkajs';
import { unary } from '@sotto/client-sdk';
import { envelopesTopic } from '@sotto/contracts';
import type { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { keySlot } from '@sotto/platform/redis';
import {
  callerCredentials,
  metricUntil,
  metricValue,
  relaySendRequest,
  startPrivateRedisCluster,
  testKafka,
  type PrivateRedisCluster,
  type TestCluster,
  type TestService,
} from '@sotto/testing';
import {
  mailboxOf,
  registerAtDirectory,
  startRelayNeighbours,
  type DirectoryAccount,
} from '../testing/relay-neighbours';

interface Account {
  readonly accountId: string;
  readonly registrationId: number;
}

const DEADLINE_MS = 60_000;

/** Polls `check` until it answers something other than undefined; errors (a failover) count as not yet. */
async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + DEADLINE_MS;
  let last = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = ` (last: ${(error as Error).message})`;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${DEADLINE_MS / 1000} s${last}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * MAILBOX_DURABILITY=replica on a 3-master, 3-replica Redis Cluster: the relay commits a batch's
 * offsets only once a replica of every master it wrote to holds the batch, so the replica that a
 * failover promotes has everything Kafka counts as routed.
 */
describe('routing with MAILBOX_DURABILITY=replica', () => {
  let redis: PrivateRedisCluster;
  let cluster: TestCluster;
  let relay: TestService;
  let client: RelayServiceClient;
  let directory: DirectoryServiceClient;
  let admin: Admin;
  const group = `relay-durable-${randomUUID()}`;

  beforeAll(async () => {
    redis = await startPrivateRedisCluster();
    ({ cluster, directory } = await startRelayNeighbours());
    relay = await cluster.start('message-relay', {
      ...redis.env,
      REDIS_URL: undefined,
      KAFKA_CONSUMER_GROUP: group,
      KAFKA_SESSION_TIMEOUT_MS: '6000',
      KAFKA_COMMIT_INTERVAL_MS: '20',
      MAILBOX_DURABILITY: 'replica',
      MAILBOX_DURABILITY_TIMEOUT_MS: '300',
    });
    client = new RelayServiceClient(relay.grpc, callerCredentials('gateway'));
    admin = testKafka({ clientId: 'durable-routing-spec' }).admin();
    await admin.connect();
  });

  afterAll(async () => {
    client?.close();
    directory?.close();
    await admin?.disconnect();
    await cluster?.stop();
    await redis?.stop();
  });

  const account = (): Promise<DirectoryAccount> => registerAtDirectory(directory);

  async function send(from: Account, to: Account, text: string): Promise<string> {
    const { guids } = await unary(client.send.bind(client), relaySendRequest(from, to, text));
    const [guid] = guids;
    if (guid === undefined) throw new Error('Send answered no GUID');
    return guid;
  }

  const queued = async (of: Account): Promise<string[]> =>
    (await mailboxOf(client, of.accountId)).map((item) => item.envelope?.guid ?? '');

  /** The partition an account's envelopes go to, as the relay's producer picks it. */
  async function partitionOf(account: Account): Promise<number> {
    const metadata = await admin.fetchTopicMetadata({ topics: [envelopesTopic.TOPIC] });
    const partitionMetadata = metadata.topics[0]?.partitions ?? [];
    return Partitioners.DefaultPartitioner()({
      topic: envelopesTopic.TOPIC,
      partitionMetadata,
      message: { key: envelopesTopic.encodeKey(account.accountId), value: null },
    });
  }

  const endOf = async (partition: number): Promise<bigint> =>
    BigInt(
      (await admin.fetchTopicOffsets(envelopesTopic.TOPIC)).find((p) => p.partition === partition)?.high ??
        '0',
    );

  const committedOf = async (partition: number): Promise<bigint> => {
    const [topic] = await admin.fetchOffsets({ groupId: group, topics: [envelopesTopic.TOPIC] });
    return BigInt(topic?.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
  };

  /** Batches the relay found not durable in time, from its /metrics. */
  const NOT_DURABLE = 'sotto_relay_mailbox_not_durable_batches_total';

  it('commits nothing while a replica is stopped, commits once it is back, and a failover then loses nothing', async () => {
    const [alice, bob] = await Promise.all([account(), account()]);
    const partition = await partitionOf(bob);
    const operator = redis.client();
    let stopped: number | undefined;
    try {
      await operator.ping();
      const slot = keySlot(`sotto:mailbox:{${bob.accountId}:1}:queue`);
      // A replica shows in the slot map once it has attached to its master, which may come after start.
      const deadline = Date.now() + 30_000;
      while ((operator.slots[slot] ?? []).length < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        await new Promise<void>((resolve, reject) =>
          operator.refreshSlotsCache((error) => (error ? reject(error) : resolve())),
        );
      }
      const [master, replica] = operator.slots[slot] ?? [];
      if (master === undefined || replica === undefined)
        throw new Error(`no master and replica for slot ${slot} after 30 s`);

      // Healthy: routed and committed.
      const first = await send(alice, bob, 'before');
      const firstEnd = await endOf(partition);
      await until('the first batch committed', async () =>
        (await committedOf(partition)) >= firstEnd ? true : undefined,
      );

      // The replica of bob's master stops (SIGSTOP): still connected as far as its master knows, it
      // acknowledges nothing more. The mail reaches the master (and bob can read it), but WAIT finds
      // no replica holding it, so the offset stays where it was, batch after batch. (A WAIT on a
      // connection other than the one that wrote would count the replica's old acknowledgement.)
      const replicaPid = redis.pids[redis.nodes.indexOf(replica)];
      if (replicaPid === undefined) throw new Error(`no process for ${replica}`);
      process.kill(replicaPid, 'SIGSTOP');
      stopped = replicaPid;
      const refusedBefore = await metricValue(relay, NOT_DURABLE);
      const second = await send(alice, bob, 'while the replica is down');
      const secondEnd = await endOf(partition);
      // Two batches found not durable.
      await metricUntil(relay, NOT_DURABLE, (batches) => batches >= refusedBefore + 2);
      expect(await queued(bob)).toEqual([first, second]);
      expect(await committedOf(partition)).toBeLessThan(secondEnd);

      // Back, it catches up with its master; the batch read again is durable now and is committed.
      process.kill(replicaPid, 'SIGCONT');
      stopped = undefined;
      await until('the second batch committed', async () =>
        (await committedOf(partition)) >= secondEnd ? true : undefined,
      );

      // What was committed is on the replica: kill the master, and the promoted replica has it all, once.
      await redis.kill(master);
      await redis.waitHealthy();
      const after = await until('bob’s mailbox read after the failover', async () => {
        const guids = await queued(bob);
        return guids.length >= 2 ? guids : undefined;
      });
      expect(after).toEqual([first, second]);
      await redis.restart(master);
    } finally {
      // A stopped node would not stop with the cluster.
      if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
      operator.disconnect();
    }
  });
});
