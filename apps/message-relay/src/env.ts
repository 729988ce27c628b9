import { z } from 'zod';
import { hostPort, nonNegativeInt, positiveInt } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { kafkaEnv } from '@sotto/platform/kafka';
import { redisEnv, WRITE_DURABILITY_LEVELS } from '@sotto/platform/redis';

export const relayEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7402', metrics: '127.0.0.1:9402' },
  {
    PREKEY_DIRECTORY_ADDR: hostPort().default('127.0.0.1:7401'),
    PRESENCE_ADDR: hostPort().default('127.0.0.1:7403'),
    /** Partitions of sotto.envelopes.v1 when the relay creates it; the unit of consumer parallelism. */
    ENVELOPE_TOPIC_PARTITIONS: positiveInt().default(8),
    /** Replicas of each partition when the relay creates the topic; unset: min(3, brokers in the cluster). */
    ENVELOPE_TOPIC_REPLICATION: positiveInt().optional(),
    /**
     * Replicas that must hold an envelope before Send answers (acks=all); set on the topic when
     * the relay creates it, and an existing topic with fewer is refused at start-up.
     * Unset: 2 when the topic is replicated, else 1.
     */
    ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: positiveInt().optional(),
    /** Every relay of one deployment shares this group; Kafka spreads the partitions over them. */
    KAFKA_CONSUMER_GROUP: z.string().min(1).default('sotto-message-relay'),
    /** How long a relay may go silent before Kafka hands its partitions to another. */
    KAFKA_SESSION_TIMEOUT_MS: positiveInt().default(30_000),
    /**
     * Routed offsets are committed at most this often (ms); a crash re-reads at most this much,
     * harmlessly. Committing after every batch costs Kafka a request per batch.
     */
    KAFKA_COMMIT_INTERVAL_MS: positiveInt().default(100),
    /**
     * A fetch returns as soon as it has this many bytes, or after KAFKA_FETCH_MAX_WAIT_MS. With 1, a
     * fetch returns with whatever arrived while the last batch was routed: under load batches grow
     * by themselves, and an idle relay waits in one long poll instead of asking again and again.
     */
    KAFKA_FETCH_MIN_BYTES: positiveInt().default(1),
    /** How long a fetch waits for KAFKA_FETCH_MIN_BYTES (ms). */
    KAFKA_FETCH_MAX_WAIT_MS: positiveInt().default(500),
    /**
     * A mailbox holding this many envelopes refuses more (Send answers RESOURCE_EXHAUSTED):
     * a month of a busy person's mail, offline the whole time, is well under it.
     */
    MAILBOX_MAX_ENVELOPES: positiveInt().default(50_000),
    /** A mailbox holding this many bytes of envelopes refuses more; bounds Redis memory per device. */
    MAILBOX_MAX_BYTES: positiveInt().default(100 * 1024 * 1024),
    /** How long an undelivered envelope is kept after it arrived, each on its own clock: 30 days. */
    MAILBOX_ENVELOPE_TTL_SECONDS: positiveInt().default(30 * 24 * 60 * 60),
    /**
     * How durable routed mail must be before its Kafka offsets are committed. none: as soon as the
     * master has it (a master lost before replicating loses what Kafka counts as routed); replica:
     * WAIT until MAILBOX_DURABILITY_REPLICAS replicas of each master written to hold it; replica-aof:
     * WAITAOF until the master and that many replicas have fsynced it (Redis 7.2+; before 7.2, WAIT,
     * with appendfsync always on the masters for their own disk). Needs replicas: on a single Redis
     * without them, anything but none routes nothing.
     */
    MAILBOX_DURABILITY: z
      .enum(WRITE_DURABILITY_LEVELS, { message: `expected one of ${WRITE_DURABILITY_LEVELS.join(', ')}` })
      .default('none'),
    /** Replicas of each master that must hold routed mail, with MAILBOX_DURABILITY replica or replica-aof. */
    MAILBOX_DURABILITY_REPLICAS: positiveInt().default(1),
    /**
     * How long routing waits for them (ms); short of them, the batch's offsets are not committed and
     * the batch is routed again (a no-op per GUID) until they answer.
     */
    MAILBOX_DURABILITY_TIMEOUT_MS: positiveInt().default(1000),
    /**
     * How long the relay trusts its cached copy of an account's device list, in ms (0: no cache,
     * every Send asks the directory). The directory's change messages drop entries as they happen;
     * this bounds what a lost one costs.
     */
    DEVICE_LIST_CACHE_TTL_MS: nonNegativeInt().default(60_000),
    /** Most accounts whose device lists the relay caches (least recently used go first); ~300 bytes each. */
    DEVICE_LIST_CACHE_MAX_ACCOUNTS: positiveInt().default(100_000),
    /**
     * How long a mailbox's usage, as Redis gave it to a Send, stands in for asking again while the
     * mailbox is below half its caps (ms; 0: every Send asks). Past half, every Send asks.
     */
    MAILBOX_ROOM_CACHE_MS: nonNegativeInt().default(1000),
    /** Most mailboxes whose usage the relay remembers (the oldest answers go first); ~150 bytes each. */
    MAILBOX_ROOM_CACHE_MAX_MAILBOXES: positiveInt().default(100_000),
    /** Test-only: crash at a named point of routing (crash-before-mailbox, crash-before-commit). */
    SOTTO_FAULT_INJECTION: z.enum(['crash-before-mailbox', 'crash-before-commit']).optional(),
  },
)
  .and(kafkaEnv)
  .and(redisEnv);
export type RelayEnv = z.output<typeof relayEnv>;
export const RELAY_ENV = Symbol('RELAY_ENV');
