import { InFlightWindow } from './in-flight-window';

describe('InFlightWindow', () => {
  it('has room for the limit of envelopes, then none until an acknowledgement', async () => {
    const window = new InFlightWindow({ envelopes: 3, bytes: 1_000 });
    expect(window.room()).toEqual({ envelopes: 3, bytes: 1_000 });
    window.add('a', 10);
    window.add('b', 10);
    expect(window.room()).toEqual({ envelopes: 1, bytes: 980 });
    window.add('c', 10);
    expect(window.isFull).toBe(true);
    expect(window.room()).toEqual({ envelopes: 0, bytes: 0 });

    let roomMade = false;
    const waiting = window.whenRoom().then(() => (roomMade = true));
    await Promise.resolve();
    expect(roomMade).toBe(false);
    expect(window.release(['b'])).toBe(1);
    await waiting;
    expect(window.room()).toEqual({ envelopes: 1, bytes: 980 });
  });

  it('is full once the bytes reach the limit, however few the envelopes', () => {
    const window = new InFlightWindow({ envelopes: 256, bytes: 100 });
    window.add('big', 60);
    expect(window.room()).toEqual({ envelopes: 255, bytes: 40 });
    window.add('bigger', 60);
    expect(window.isFull).toBe(true);
    expect(window.bytes).toBe(120);
    window.release(['big']);
    expect(window.room()).toEqual({ envelopes: 255, bytes: 40 });
  });

  it('ignores acknowledgements of envelopes it does not hold, and counts a GUID once', async () => {
    const window = new InFlightWindow({ envelopes: 1, bytes: 100 });
    window.add('held', 5);
    window.add('held', 5);
    expect([window.envelopes, window.bytes]).toEqual([1, 5]);
    // A device cannot make room by acknowledging what it was never sent, or an envelope twice.
    expect(window.release(['other', 'another'])).toBe(0);
    expect(window.isFull).toBe(true);
    expect(window.release(['held', 'held'])).toBe(1);
    expect([window.envelopes, window.bytes]).toEqual([0, 0]);
    await expect(window.whenRoom()).resolves.toBeUndefined();
  });

  it('lets every waiter go when cleared', async () => {
    const window = new InFlightWindow({ envelopes: 1, bytes: 100 });
    window.add('x', 1);
    const waiters = [window.whenRoom(), window.whenRoom()];
    window.clear();
    await expect(Promise.all(waiters)).resolves.toEqual([undefined, undefined]);
    expect(window.envelopes).toBe(0);
  });
});
