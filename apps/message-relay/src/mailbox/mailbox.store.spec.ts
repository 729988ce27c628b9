import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { testInfra } from '@sotto/testing';
import { MailboxStore, type DeviceAddress } from './mailbox.store';

describe('MailboxStore against Redis', () => {
  let redis: Redis;
  let store: MailboxStore;
  let device: DeviceAddress;

  beforeAll(() => {
    redis = new Redis(testInfra().redisUrl);
    store = new MailboxStore(redis);
  });

  afterAll(() => redis.quit());

  beforeEach(() => {
    device = { accountId: randomUUID(), deviceId: 1 };
  });

  /** Queues envelopes of the given sizes; returns their GUIDs in order. */
  async function queue(sizes: number[]): Promise<string[]> {
    const items = sizes.map((size, index) => ({
      device,
      guid: `guid-${String(index).padStart(4, '0')}`,
      envelope: Buffer.alloc(size, index % 256),
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
});
