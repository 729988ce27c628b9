import { MailboxRoom } from './mailbox-room';

const bob = { accountId: 'bob', deviceId: 1 };
const carol = { accountId: 'carol', deviceId: 1 };

function roomWith(options: { ttlMs?: number; maxMailboxes?: number } = {}) {
  let now = 1_000_000;
  const room = new MailboxRoom(
    { envelopes: 10, bytes: 1000 },
    { ttlMs: options.ttlMs ?? 1000, maxMailboxes: options.maxMailboxes ?? 100, now: () => now },
  );
  return { room, later: (ms: number) => (now += ms) };
}

describe('MailboxRoom', () => {
  it('knows nothing of a mailbox Redis was never asked about', () => {
    const { room } = roomWith();
    expect(room.estimate(bob, 10)).toBeUndefined();
    room.added(bob, 10);
    expect(room.estimate(bob, 10)).toBeUndefined();
  });

  it("answers from Redis's last reading plus what was accepted since, while that stays within half of each cap", () => {
    const { room } = roomWith();
    room.checked(bob, { envelopes: 2, bytes: 100 });
    expect(room.estimate(bob, 10)).toEqual({ envelopes: 2, bytes: 100 });
    room.added(bob, 10);
    room.added(bob, 10);
    // A fifth envelope makes 5 of 10: still half. A sixth would be past it: Redis is asked.
    expect(room.estimate(bob, 10)).toEqual({ envelopes: 4, bytes: 120 });
    room.added(bob, 10);
    expect(room.estimate(bob, 10)).toBeUndefined();
    expect(room.estimate(carol, 10)).toBeUndefined();
  });

  it('asks Redis for an envelope that would take the bytes past half their cap', () => {
    const { room } = roomWith();
    room.checked(bob, { envelopes: 0, bytes: 400 });
    expect(room.estimate(bob, 100)).toEqual({ envelopes: 0, bytes: 400 });
    expect(room.estimate(bob, 101)).toBeUndefined();
  });

  it('forgets a reading once it is ttlMs old, and never keeps one with a ttl of 0', () => {
    const { room, later } = roomWith();
    room.checked(bob, { envelopes: 0, bytes: 0 });
    later(999);
    expect(room.estimate(bob, 1)).toBeDefined();
    later(1);
    expect(room.estimate(bob, 1)).toBeUndefined();
    expect(room.size).toBe(0);

    const off = roomWith({ ttlMs: 0 }).room;
    off.checked(bob, { envelopes: 0, bytes: 0 });
    expect(off.estimate(bob, 1)).toBeUndefined();
    expect(off.size).toBe(0);
  });

  it('a reading raises the estimate and never lowers it: Redis has not counted what is still being routed', () => {
    const { room, later } = roomWith();
    room.checked(bob, { envelopes: 1, bytes: 10 });
    room.added(bob, 10);
    room.added(bob, 10);
    // Redis has routed one of the two yet.
    room.checked(bob, { envelopes: 2, bytes: 20 });
    expect(room.estimate(bob, 10)).toEqual({ envelopes: 3, bytes: 30 });
    room.checked(bob, { envelopes: 4, bytes: 400 });
    expect(room.estimate(bob, 10)).toEqual({ envelopes: 4, bytes: 400 });
    // Raised, not restarted: it is forgotten ttlMs after the first reading, and the next one starts afresh.
    later(1000);
    room.checked(bob, { envelopes: 0, bytes: 0 });
    expect(room.estimate(bob, 10)).toEqual({ envelopes: 0, bytes: 0 });
  });

  it('remembers at most maxMailboxes, dropping the oldest estimates first', () => {
    const { room } = roomWith({ maxMailboxes: 2 });
    const device = (n: number) => ({ accountId: `a${n}`, deviceId: 1 });
    room.checked(device(1), { envelopes: 0, bytes: 0 });
    room.checked(device(2), { envelopes: 0, bytes: 0 });
    // Read again: raised, but still the oldest estimate.
    room.checked(device(1), { envelopes: 0, bytes: 0 });
    room.checked(device(3), { envelopes: 0, bytes: 0 });
    expect(room.size).toBe(2);
    expect(room.estimate(device(1), 1)).toBeUndefined();
    expect(room.estimate(device(2), 1)).toBeDefined();
    expect(room.estimate(device(3), 1)).toBeDefined();
  });
});
