import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { hostPort, nonNegativeInt, positiveInt, rate, rateLimitsSwitch } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { redisEnv } from '@sotto/platform/redis';
import { senderCertificateEnv } from './sender-certificates/sender-certificate-env';

export const gatewayEnv = serviceEnvSchema(
  // The public API listens where clients expect it by default.
  { grpc: '127.0.0.1:7400', metrics: '127.0.0.1:9400' },
  {
    PREKEY_DIRECTORY_ADDR: hostPort().default('127.0.0.1:7401'),
    MESSAGE_RELAY_ADDR: hostPort().default('127.0.0.1:7402'),
    PRESENCE_ADDR: hostPort().default('127.0.0.1:7403'),
    BACKUP_STORE_ADDR: hostPort().default('127.0.0.1:7404'),
    KEY_VAULT_ADDR: hostPort().default('127.0.0.1:7405'),
    /** This instance's name in presence; unique per process. */
    GATEWAY_ID: z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,128}$/, {
        message: "expected 1 to 128 characters of A-Z, a-z, 0-9, '_', '.', ':', '-'",
      })
      .default(
        `${hostname()
          .replace(/[^A-Za-z0-9_.:-]/g, '-')
          .slice(0, 80)}-${process.pid}-${randomBytes(4).toString('hex')}`,
      ),
    /** How often this gateway renews its stream claims; well under presence's PRESENCE_TTL_MS. */
    PRESENCE_HEARTBEAT_MS: positiveInt().default(15_000),
    /**
     * How long a successful authentication is remembered. Revocations reach
     * every gateway through Redis within milliseconds; this only bounds how
     * long one could be missed (the gateway that made it died before telling).
     */
    AUTH_CACHE_TTL_MS: positiveInt().default(30_000),
    /** Most authentications remembered at once; the oldest go first. */
    AUTH_CACHE_MAX_ENTRIES: positiveInt().default(100_000),
    /**
     * How long the gateway trusts its cached copy of an account's unidentified access (its key, and
     * whether anyone may send it sealed messages), in ms; 0: no cache, every sealed send asks the
     * directory. The directory's change notices drop entries as they happen; this bounds how long a
     * lost one lets an old key (or a send with no key) in.
     */
    UNIDENTIFIED_ACCESS_CACHE_TTL_MS: nonNegativeInt().default(30_000),
    /** Most accounts whose access the gateway caches (least recently used go first); ~250 bytes each. */
    UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS: positiveInt().default(100_000),
    /**
     * How far V8 may grow the old generation past what its last full collection kept, in percent
     * (V8's --heap-growing-percent, which NODE_OPTIONS does not take); 0: V8's own growth, up to four
     * times when the process allocates fast. Lower keeps less memory committed per held stream and
     * collects more often: docs/capacity.md measures both.
     */
    GATEWAY_HEAP_GROWING_PERCENT: nonNegativeInt().max(300, { message: 'expected at most 300' }).default(0),
    /**
     * A quiet gateway gives back the memory its heap grew to while streams opened or a burst passed:
     * once its event loop has been under 5% busy for GATEWAY_HEAP_TRIM_QUIET_MS (and over the last
     * second), and V8's old generation has grown this many MiB (and by half) past what the last trim
     * left committed, it runs one full collection that compacts the heap. 0: never. The trim pauses
     * the gateway in proportion to what it keeps (docs/capacity.md measures it).
     */
    GATEWAY_HEAP_TRIM_MIB: nonNegativeInt().default(64),
    /** The gateway looks once a second, so less than a second means nothing. */
    GATEWAY_HEAP_TRIM_QUIET_MS: positiveInt()
      .min(1_000, { message: 'expected at least 1000' })
      .max(600_000, { message: 'expected at most 600000' })
      .default(10_000),
    /** Failed authentications one address (an IPv6 /64) may make per window before it is refused. */
    AUTH_FAILURES_PER_SOURCE: positiveInt().default(20),
    /** Failed authentications of one device per window, from anywhere, before each address gets only one more. */
    AUTH_FAILURES_PER_DEVICE: positiveInt().default(100),
    AUTH_FAILURE_WINDOW_SECONDS: positiveInt().default(60),
    /** "off" turns every rate limit off, for load tests only; the gateway says so as it starts. */
    SOTTO_RATE_LIMITS: rateLimitsSwitch(),
    // Rate limits, as <count>/<period>: that many at once, and as many again over the period.
    // Sized so that a person never meets them and a script does; README.md says why each is what it is.
    /** Registrations from one address (IPv4, or an IPv6 /64). */
    RATE_LIMIT_REGISTER_PER_SOURCE: rate('20/1h'),
    /** Account recoveries from one address. */
    RATE_LIMIT_RECOVER_ACCOUNT_PER_SOURCE: rate('10/1h'),
    /** Sends from one device, typing indicators included. */
    RATE_LIMIT_SEND_PER_DEVICE: rate('60/1m'),
    /** Sends to one account, from everyone together. */
    RATE_LIMIT_SEND_PER_DESTINATION: rate('600/1m'),
    /** Sealed sends (no sender known) from one address (IPv4, or an IPv6 /64): NATs share one. */
    RATE_LIMIT_SEALED_SEND_PER_SOURCE: rate('300/1m'),
    /** Sealed sends to one account whose access key was accepted, from everyone together. */
    RATE_LIMIT_SEALED_SEND_PER_DESTINATION: rate('600/1m'),
    /** Group messages in one upload (SendMultiRecipient) from one address (IPv4, or an IPv6 /64). */
    RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_SOURCE: rate('120/1m'),
    /** Group messages to one account whose key was part of an accepted combined key, from everyone together. */
    RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_DESTINATION: rate('1200/1m'),
    /** Username lookups by one account, all its devices together. */
    RATE_LIMIT_LOOKUP_USERNAME_PER_ACCOUNT: rate('100/1h'),
    /** Account lookups (naming a sender) by one account. */
    RATE_LIMIT_LOOKUP_ACCOUNT_PER_ACCOUNT: rate('300/1h'),
    /** Prekey bundle fetches by one account, whoever it fetches. */
    RATE_LIMIT_PREKEY_BUNDLES_PER_ACCOUNT: rate('200/1h'),
    /** Connect streams opened by one device. */
    RATE_LIMIT_CONNECT_PER_DEVICE: rate('30/1m'),
    /** Every other authenticated call of one device (prekey counts and uploads, backups, the vault, …). */
    RATE_LIMIT_OTHER_CALLS_PER_DEVICE: rate('120/1m'),
    /** Link codes (CreateLink) made from one address. */
    RATE_LIMIT_CREATE_LINK_PER_SOURCE: rate('10/1h'),
    /** WaitForLink calls from one address: a new device waits in calls of a minute or two. */
    RATE_LIMIT_WAIT_FOR_LINK_PER_SOURCE: rate('60/1h'),
    /** CompleteLink calls from one address. */
    RATE_LIMIT_COMPLETE_LINK_PER_SOURCE: rate('10/1h'),
    /** Link codes approved by one account, all its devices together. */
    RATE_LIMIT_APPROVE_LINK_PER_ACCOUNT: rate('10/1h'),
    /** Signed device lists (GetDeviceList) fetched by one account, whoever's. */
    RATE_LIMIT_DEVICE_LISTS_PER_ACCOUNT: rate('300/1h'),
    /**
     * Envelopes a device may have unacknowledged on its stream (Signal uses
     * 256); the rest wait in its mailbox until acknowledgements come. At most
     * 1000, what one acknowledgement may carry.
     */
    DELIVERY_MAX_IN_FLIGHT: positiveInt().max(1000, { message: 'expected at most 1000' }).default(256),
    /**
     * Batch calls of each kind (SendBatch, ReadMailboxBatch, AckBatch) the gateway keeps in flight to
     * the relays; the Sends, reads and acknowledgements made meanwhile go together in the next.
     */
    RELAY_BATCH_CONCURRENCY: positiveInt().max(64, { message: 'expected at most 64' }).default(4),
    /**
     * AckBatch calls the gateway keeps in flight to the relays, in place of RELAY_BATCH_CONCURRENCY:
     * nobody waits for them (a stream's window opens as its device acknowledges), so one at a time
     * lets each carry more acknowledgements, in fewer calls and fewer mailbox deletes.
     */
    RELAY_ACK_BATCH_CONCURRENCY: positiveInt().max(64, { message: 'expected at most 64' }).default(1),
    /**
     * How long the relay has to answer a SendBatch; past it each Send in the batch fails with
     * DEADLINE_EXCEEDED, so a relay that hangs does not hold devices' sends (and their streams'
     * send budgets) for good. At most 5 minutes: a longer wait is no deadline.
     */
    RELAY_SEND_TIMEOUT_MS: positiveInt().max(300_000, { message: 'expected at most 300000' }).default(10_000),
    /** Bytes of envelope content a device may have unacknowledged; one envelope goes even if larger. */
    DELIVERY_MAX_IN_FLIGHT_BYTES: positiveInt().default(1024 * 1024),
    /**
     * Sends a device may have taken from its Connect stream and not yet
     * answered; past it the gateway reads nothing more from the stream
     * (acknowledgements included) until one is answered.
     */
    CONNECT_SEND_MAX_IN_FLIGHT: positiveInt().max(10_000, { message: 'expected at most 10000' }).default(256),
    /** Bytes of envelope content of those sends; one send goes even if larger. */
    CONNECT_SEND_MAX_IN_FLIGHT_BYTES: positiveInt().default(4 * 1024 * 1024),
    /** Most recipients of one SendMultiRecipient (a group's members but the sender); Signal allows 1,000. */
    MULTI_RECIPIENT_MAX_RECIPIENTS: positiveInt()
      .max(5000, { message: 'expected at most 5000' })
      .default(1000),
    /**
     * Most bytes of one SendMultiRecipient's message. It is logged to Kafka as one record with its
     * recipients' devices, under the broker's 1 MiB; at most 900 KiB.
     */
    MULTI_RECIPIENT_MAX_BYTES: positiveInt()
      .max(900 * 1024, { message: 'expected at most 921600' })
      .default(768 * 1024),
    /** First wait before a failed drain of a connected device is tried again; doubled each time, with jitter. */
    DELIVERY_DRAIN_RETRY_MIN_MS: positiveInt().default(250),
    /** Longest wait between retries of a failed drain. */
    DELIVERY_DRAIN_RETRY_MAX_MS: positiveInt().default(30_000),
  },
)
  .and(redisEnv)
  .and(senderCertificateEnv);
export type GatewayEnv = z.output<typeof gatewayEnv>;
export const GATEWAY_ENV = Symbol('GATEWAY_ENV');
