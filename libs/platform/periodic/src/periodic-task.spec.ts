import { Injectable, Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { PeriodicTask } from './index';

const INTERVAL_MS = 1000;

/** A run that ends when the test says so. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

@Injectable()
class Counter extends PeriodicTask {
  runs = 0;
  work: (run: number) => Promise<void> = () => Promise.resolve();

  constructor() {
    super('Counter', INTERVAL_MS);
  }

  protected run(): Promise<void> {
    this.runs += 1;
    return this.work(this.runs);
  }
}

describe('PeriodicTask', () => {
  let task: Counter;

  beforeEach(() => {
    task = new Counter();
  });

  afterEach(async () => {
    await task.stop();
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  describe('on a fake clock', () => {
    beforeEach(() => jest.useFakeTimers());

    it('runs once at start, then once every interval', async () => {
      task.start();
      expect(task.runs).toBe(1);
      await jest.advanceTimersByTimeAsync(INTERVAL_MS - 1);
      expect(task.runs).toBe(1);
      await jest.advanceTimersByTimeAsync(1);
      expect(task.runs).toBe(2);
      await jest.advanceTimersByTimeAsync(3 * INTERVAL_MS);
      expect(task.runs).toBe(5);
    });

    it('starts once however often it is started', async () => {
      task.start();
      task.start();
      await jest.advanceTimersByTimeAsync(INTERVAL_MS);
      expect(task.runs).toBe(2);
    });

    it('skips the ticks that come while a run is under way', async () => {
      const slow = gate();
      task.work = (run) => (run === 1 ? slow.promise : Promise.resolve());
      task.start();
      await jest.advanceTimersByTimeAsync(5 * INTERVAL_MS);
      expect(task.runs).toBe(1);
      slow.open();
      await jest.advanceTimersByTimeAsync(INTERVAL_MS);
      expect(task.runs).toBe(2);
    });

    it('logs a run that fails and runs again on the next tick', async () => {
      const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      task.work = (run) => (run === 1 ? Promise.reject(new Error('disk full')) : Promise.resolve());
      task.start();
      await jest.advanceTimersByTimeAsync(0);
      expect(logged).toHaveBeenCalledTimes(1);
      expect(logged).toHaveBeenCalledWith(
        'run failed, next in 1000 ms: disk full',
        expect.stringContaining('disk full'),
      );
      await jest.advanceTimersByTimeAsync(INTERVAL_MS);
      expect(task.runs).toBe(2);
      expect(logged).toHaveBeenCalledTimes(1);
    });

    it('on stop, waits for the run under way and ticks no more', async () => {
      const slow = gate();
      task.work = () => slow.promise;
      task.start();
      let stopped = false;
      const stopping = task.stop().then(() => (stopped = true));
      await jest.advanceTimersByTimeAsync(3 * INTERVAL_MS);
      expect(stopped).toBe(false);
      slow.open();
      await stopping;
      await jest.advanceTimersByTimeAsync(3 * INTERVAL_MS);
      expect(task.runs).toBe(1);
    });

    it('runs now on request, joining a run under way rather than starting another', async () => {
      const slow = gate();
      task.work = () => slow.promise;
      const first = task.runNow();
      const second = task.runNow();
      expect(task.runs).toBe(1);
      slow.open();
      await Promise.all([first, second]);
      await task.runNow();
      expect(task.runs).toBe(2);
    });
  });

  it('does not keep the process alive', () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;
    const before = timers();
    task.start();
    expect(timers()).toBe(before);
  });

  it('starts when the application starts and stops, after its run, when it shuts down', async () => {
    const moduleRef = await Test.createTestingModule({ providers: [Counter] }).compile();
    const counter = moduleRef.get(Counter);
    const slow = gate();
    counter.work = () => slow.promise;
    expect(counter.runs).toBe(0);
    await moduleRef.init();
    expect(counter.runs).toBe(1);
    let closed = false;
    const closing = moduleRef.close().then(() => (closed = true));
    await new Promise((resolve) => setImmediate(resolve));
    expect(closed).toBe(false);
    slow.open();
    await closing;
    expect(counter.runs).toBe(1);
  });
});
