/**
 * The load generator: pairs of SDK clients converse through the whole path
 * (gateway → relay → Kafka → routing → Redis mailbox → presence → delivery
 * stream → decrypt → ack) and it reports messages per second, end-to-end
 * latency and, when it started the platform itself, the CPU time each
 * service and server spent per message.
 *
 *   npm run loadgen -- [--pairs 16] [--messages 100] [--size 140] [--server HOST:PORT [--ca FILE]]
 *                      [--plaintext-storage] [--json]
 *   npm run loadgen -- --wire …    the wire load generator (wire.ts), as npm run loadgen:wire
 *
 * Without --server it starts its own Kafka, Redis, PostgreSQL and the six
 * services in a scratch directory, exactly as `npm start` runs them (the
 * servers over mutual TLS; --plaintext-storage runs them without, to measure
 * what TLS costs), and stops them afterwards.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { SottoClient, type ReceivedMessage } from '@sotto/client-sdk';
import { cpuSeconds } from './cpu';
import { runLoad, wholeNumber } from './own-platform';

interface Options {
  readonly pairs: number;
  readonly messages: number;
  readonly size: number;
  readonly server?: string;
  readonly ca?: string;
  readonly json: boolean;
  readonly plaintextStorage: boolean;
}

const say = (line: string): void => void process.stderr.write(`[loadgen] ${line}\n`);

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      pairs: { type: 'string', default: '16' },
      messages: { type: 'string', default: '100' },
      size: { type: 'string', default: '140' },
      server: { type: 'string' },
      ca: { type: 'string' },
      json: { type: 'boolean', default: false },
      'plaintext-storage': { type: 'boolean', default: false },
    },
  });
  const count = (name: 'pairs' | 'messages' | 'size', max: number): number =>
    wholeNumber(name, values[name], max);
  return {
    pairs: count('pairs', 1000),
    messages: count('messages', 100_000),
    size: count('size', 64 * 1024),
    server: values.server,
    ca: values.ca,
    json: values.json ?? false,
    plaintextStorage: values['plaintext-storage'] ?? false,
  };
}

/** Starts listening; resolves once the backlog is delivered, so what is sent next arrives live. */
async function listen(
  client: SottoClient,
  expected: number,
  onMessage: (message: ReceivedMessage) => void,
): Promise<{ done: Promise<ReceivedMessage[]> }> {
  const stop = new AbortController();
  let count = 0;
  let drained!: () => void;
  const ready = new Promise<void>((resolve) => (drained = resolve));
  const done = client.receive({
    waitSeconds: 3600,
    signal: stop.signal,
    onDrained: drained,
    onMessage: (message) => {
      onMessage(message);
      if (++count >= expected) stop.abort();
    },
  });
  await Promise.race([ready, done]);
  return { done };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

async function run(
  options: Options,
  server: string,
  pids: Record<string, number>,
  ca: string | undefined,
): Promise<object> {
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-loadgen-'));
  const clients: SottoClient[] = [];
  try {
    const tag = randomUUID().replace(/-/g, '').slice(0, 8);
    say(`registering ${options.pairs * 2} clients`);
    const register = (role: string, index: number) =>
      SottoClient.register({
        profileDir: join(profiles, `${role}-${index}`),
        server,
        ca,
        username: `lg_${tag}_${role}${index}`,
      }).then((client) => (clients.push(client), client));
    const pairs = await Promise.all(
      Array.from({ length: options.pairs }, async (_, index) => ({
        sender: await register('s', index),
        receiver: await register('r', index),
      })),
    );

    // Sessions are set up outside the measurement, both ways, so every measured message is a plain ratchet step.
    say('setting up sessions');
    await Promise.all(
      pairs.map(async ({ sender, receiver }) => {
        const inbound = await listen(receiver, 1, () => undefined);
        await sender.send(receiver.username, 'hello');
        await inbound.done;
        const outbound = await listen(sender, 1, () => undefined);
        await receiver.send(sender.username, 'hello back');
        await outbound.done;
      }),
    );

    const latencies: number[] = [];
    const listeners = await Promise.all(
      pairs.map(({ receiver }) =>
        listen(receiver, options.messages, (message) =>
          latencies.push(Date.now() - Date.parse(message.sentAt)),
        ),
      ),
    );
    const text = randomBytes(options.size).toString('base64').slice(0, options.size);
    const total = options.pairs * options.messages;
    say(
      `sending ${total} messages of ${options.size} characters (${options.pairs} pairs × ${options.messages})`,
    );
    const cpuBefore = cpuSeconds(pids);
    const started = process.hrtime.bigint();
    // One device sends one message at a time, as a person's phone does; the pairs run concurrently.
    await Promise.all(
      pairs.map(async ({ sender, receiver }) => {
        for (let i = 0; i < options.messages; i++) await sender.send(receiver.username, text);
      }),
    );
    const sentSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const received = (await Promise.all(listeners.map((listener) => listener.done))).flat().length;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const cpuAfter = cpuSeconds(pids);
    if (received !== total) throw new Error(`received ${received} of ${total} messages`);

    latencies.sort((a, b) => a - b);
    const cpuMsPerMessage = Object.fromEntries(
      Object.keys(pids).map((name) => [
        name,
        (((cpuAfter[name] ?? 0) - (cpuBefore[name] ?? 0)) * 1000) / total,
      ]),
    );
    return {
      ...(options.server ? {} : { storage: options.plaintextStorage ? 'plaintext' : 'tls' }),
      pairs: options.pairs,
      messagesPerSender: options.messages,
      textSize: options.size,
      messages: total,
      seconds: Number(seconds.toFixed(3)),
      messagesPerSecond: Math.round(total / seconds),
      sendsPerSecond: Math.round(total / sentSeconds),
      latencyMs: {
        p50: percentile(latencies, 50),
        p95: percentile(latencies, 95),
        p99: percentile(latencies, 99),
        max: latencies[latencies.length - 1] ?? 0,
      },
      cpuMsPerMessage,
    };
  } finally {
    for (const client of clients) client.close();
    rmSync(profiles, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--wire') {
  // `npm run loadgen -- --wire …` is `npm run loadgen:wire -- …`.
  process.argv.splice(2, 1);
  void import('./wire');
} else {
  runLoad(() => parseOptions(process.argv.slice(2)), say, run);
}
