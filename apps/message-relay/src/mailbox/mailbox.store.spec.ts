import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { testRedis } from '@sotto/testing';
import { MailboxMetrics } from './mailbox-metrics';
import { MailboxStore, type DeviceAddress } from './mailbox.store';

const DAY_MS = 24 * 60 * 60 * 1000;
const TTL_MS = 30 * DAY_MS;
/** How long a mailbox's keys live after their expiry was pushed back: 30 days and a 32nd. */
const KEY_TTL_MS = TTL_MS + TTL_MS / 32;
const KEYS = ['queue', 'messages', 'sequence', 'arrivals', 'bytes'] as const;

describe('MailboxStore against Redis', () => {
  let redis: Redis;
  let store: MailboxStore;
  let registry: Registry;
  let device: DeviceAddress;
  /** The store's clock, which a test moves on. */
  let now = Date.now();

  beforeAll(() => {
    redis = testRedis();
  });

  afterAll(() => redis.quit());

  beforeEach(() => {
    device = { accountId: randomUUID(), deviceId: 1 };
    now = Date.now();
    registry = new Registry();
    store = new MailboxStore(redis, new MailboxMetrics(registry), { envelopeTtlMs: TTL_MS, now: () => now });
  });

  /** Queues envelopes of the given sizes, arrived now; returns their GUIDs in order. */
  async function queue(sizes: number[], prefix = 'guid'): Promise<string[]> {
    const items = sizes.map((size, index) => ({
      device,
      guid: `${prefix}-${String(index).padStart(4, '0')}`,
      envelope: Buffer.alloc(size, index % 256),
      arrivedAtMs: now,
    }));
    await store.insertMany(items);
    return items.map((item) => item.guid);
  }

  const guidsOf = (page: { items: { guid: string }[] }) => page.items.map((item) => item.guid);

  it('reads in order after a sequence, at most `limit`, and says when nothing more is queued', async () => {
    const guids = await queue([10, 10, 10, 10, 10]);
    const first = await store.read(device, 0, 2, 1_000_000);
    expect(guidsOf(first)).toEqual(guids.slice(0, 2));
    expect(first.items.map((item) => item.sequence)).toEqual([1, 2]);
    expect(first.drained).toBe(false);
    const rest = await store.read(device, 2, 3, 1_000_000);
    expect(guidsOf(rest)).toEqual(guids.slice(2));
    expect(rest.drained).toBe(true);
    expect(rest.items[0]?.envelope).toEqual(Buffer.alloc(10, 2));
    expect(await store.read(device, 5, 10, 1_000_000)).toEqual({ items: [], drained: true });
  });

  it('stops before the envelope that would take the page past the byte budget', async () => {
    const guids = await queue([400, 400, 400, 100]);
    const page = await store.read(device, 0, 100, 1000);
    expect(guidsOf(page)).toEqual(guids.slice(0, 2));
    expect(page.drained).toBe(false);
    const next = await store.read(device, 2, 100, 1000);
    expect(guidsOf(next)).toEqual(guids.slice(2));
    expect(next.drained).toBe(true);
  });

  it('returns one envelope larger than the budget on its own, so nothing is stuck behind it', async () => {
    const guids = await queue([5000, 10]);
    const page = await store.read(device, 0, 100, 1000);
    expect(guidsOf(page)).toEqual([guids[0]]);
    expect(page.items[0]?.envelope).toHaveLength(5000);
    expect(page.drained).toBe(false);
  });

  it('skips what was acknowledged, and a GUID queued twice is there once', async () => {
    const guids = await queue([10, 10, 10]);
    await queue([10]);
    expect(await store.delete(device, [guids[1] ?? ''])).toBe(1);
    const page = await store.read(device, 0, 100, 1_000_000);
    expect(guidsOf(page)).toEqual([guids[0], guids[2]]);
    expect(page.drained).toBe(true);
  });

  const expiredCount = async (): Promise<number> =>
    (await registry.getSingleMetric('sotto_mailbox_expired_envelopes_total')?.get())?.values[0]?.value ?? 0;

  it('counts what a mailbox holds, in envelopes and bytes, and frees both on acknowledgement', async () => {
    expect(await store.usage([device])).toEqual([{ envelopes: 0, bytes: 0 }]);
    const guids = await queue([100, 200, 300]);
    await queue([100]); // a redelivered GUID counts once
    expect(await store.usage([device])).toEqual([{ envelopes: 3, bytes: 600 }]);
    expect(await store.delete(device, [guids[1] ?? '', 'never-queued'])).toBe(1);
    expect(await store.delete(device, [guids[1] ?? ''])).toBe(0);
    expect(await store.usage([device])).toEqual([{ envelopes: 2, bytes: 400 }]);
  });

  it('expires each envelope 30 days after it arrived, however much arrives after it', async () => {
    const [first] = await queue([100]);
    now += 20 * DAY_MS;
    const [second] = await queue([50], 'later');
    now += 10 * DAY_MS + 1; // the first is 30 days and 1 ms old, the second 10 days
    const page = await store.read(device, 0, 100, 1_000_000);
    expect(page.items.map((item) => item.guid)).toEqual([second]);
    expect(page.items.map((item) => item.guid)).not.toContain(first);
    expect(await store.usage([device])).toEqual([{ envelopes: 1, bytes: 50 }]);
    expect(await expiredCount()).toBe(1);
    now += 20 * DAY_MS;
    expect(await store.usage([device])).toEqual([{ envelopes: 0, bytes: 0 }]);
    expect(await store.read(device, 0, 100, 1_000_000)).toEqual({ items: [], drained: true });
    expect(await expiredCount()).toBe(2);
  });

  /** The remaining TTL of each of the device's five mailbox keys, in milliseconds. */
  const keyTtls = (): Promise<number[]> =>
    Promise.all(
      KEYS.map((key) => redis.pttl(`sotto:mailbox:{${device.accountId}:${device.deviceId}}:${key}`)),
    );
  /** Sets every one of the device's mailbox keys to expire in `ms`, as if that much of their TTL were left. */
  const ageKeys = (ms: number): Promise<unknown> =>
    Promise.all(
      KEYS.map((key) => redis.pexpire(`sotto:mailbox:{${device.accountId}:${device.deviceId}}:${key}`, ms)),
    );

  it('drops an envelope that arrives already past its 30 days, and keeps the keys at most a 32nd longer than that', async () => {
    const [sequence] = await store.insertMany([
      { device, guid: 'stale', envelope: Buffer.from('old'), arrivedAtMs: now - TTL_MS - 1 },
    ]);
    expect(sequence).toBe(0);
    expect(await store.usage([device])).toEqual([{ envelopes: 0, bytes: 0 }]);
    await queue([10]);
    for (const ttl of await keyTtls()) {
      expect(ttl).toBeGreaterThan(KEY_TTL_MS - 60_000);
      expect(ttl).toBeLessThanOrEqual(KEY_TTL_MS);
    }
  });

  it('never lets the keys expire before the newest envelope, pushing their expiry back once it falls below 30 days', async () => {
    await queue([10]);
    // Well within the margin: later mail leaves the expiry where it is.
    await ageKeys(TTL_MS + 60_000);
    await queue([10], 'second');
    for (const ttl of await keyTtls()) expect(ttl).toBeLessThanOrEqual(TTL_MS + 60_000);
    // Below 30 days left, so the newest envelope would outlive its keys: all five are pushed back.
    await ageKeys(TTL_MS - 60_000);
    await queue([10], 'third');
    for (const ttl of await keyTtls()) expect(ttl).toBeGreaterThan(KEY_TTL_MS - 60_000);
    expect(await store.usage([device])).toEqual([{ envelopes: 3, bytes: 30 }]);
  });

  it('gives a mailbox drained and written to again its expiry anew, whatever its counters had left', async () => {
    const guids = await queue([10, 10]);
    expect(await store.delete(device, guids)).toBe(2);
    // The queue, messages and arrivals are gone with their last envelope; the counters stay.
    await ageKeys(TTL_MS + 60_000);
    await queue([10], 'again');
    const ttls = await keyTtls();
    expect(ttls).toHaveLength(5);
    for (const ttl of ttls) expect(ttl).toBeGreaterThan(KEY_TTL_MS - 60_000);
    const page = await store.read(device, 2, 10, 1_000_000);
    expect(page.items.map((item) => [item.guid, item.sequence])).toEqual([['again-0000', 3]]);
  });
});
