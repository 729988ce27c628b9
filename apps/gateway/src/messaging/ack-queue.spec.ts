import { status } from '@grpc/grpc-js';
import { grpcStatusOf } from '@sotto/platform/grpc';
import { RpcException } from '@nestjs/microservices';
import { AckQueue, MAX_ACK_GUIDS } from './ack-queue';

/** A relay whose acknowledgements finish when the test says so. */
function relay() {
  const calls: { guids: string[]; done: () => void; failWith: (error: Error) => void }[] = [];
  const forward = (guids: string[]) =>
    new Promise<void>((resolve, reject) => calls.push({ guids, done: resolve, failWith: reject }));
  return { calls, forward };
}

function flow() {
  const changes: string[] = [];
  return { changes, pause: () => changes.push('pause'), resume: () => changes.push('resume') };
}

const guids = (prefix: string, count: number): string[] =>
  Array.from({ length: count }, (_, index) => `${prefix}-${index}`);

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('AckQueue', () => {
  it('holds acknowledgements, with reading paused, until the stream is open, then forwards them in one call', () => {
    const { calls, forward } = relay();
    const inbound = flow();
    const failures: unknown[] = [];
    const queue = new AckQueue(forward, inbound, (error) => failures.push(error));
    expect(inbound.changes).toEqual(['pause']);
    expect(queue.add(['a'])).toBe(true);
    expect(queue.add(['b', 'c'])).toBe(true);
    expect(calls).toHaveLength(0);

    queue.start();
    expect(calls.map((call) => call.guids)).toEqual([['a', 'b', 'c']]);
    expect(inbound.changes).toEqual(['pause', 'resume']);
    expect(failures).toEqual([]);
  });

  it('forwards one call at a time, gathering what came meanwhile', async () => {
    const { calls, forward } = relay();
    const queue = new AckQueue(forward, flow(), () => undefined);
    queue.start();
    queue.add(['1']);
    queue.add(['2']);
    queue.add(['3']);
    expect(calls.map((call) => call.guids)).toEqual([['1']]);
    calls[0]?.done();
    await settle();
    expect(calls.map((call) => call.guids)).toEqual([['1'], ['2', '3']]);
    calls[1]?.done();
    await settle();
    expect(calls).toHaveLength(2);
    expect(queue.waiting).toBe(0);
  });

  it('pauses reading while half the allowance waits, and reads again once it is forwarded', async () => {
    const { calls, forward } = relay();
    const inbound = flow();
    const queue = new AckQueue(forward, inbound, () => undefined);
    queue.start();
    queue.add(['first']);
    queue.add(guids('x', MAX_ACK_GUIDS / 2));
    expect(inbound.changes).toEqual(['pause', 'resume', 'pause']);
    calls[0]?.done();
    await settle();
    expect(calls[1]?.guids).toHaveLength(MAX_ACK_GUIDS / 2);
    expect(inbound.changes).toEqual(['pause', 'resume', 'pause', 'resume']);
  });

  it.each([
    [
      'one acknowledgement of too many GUIDs',
      [guids('a', MAX_ACK_GUIDS + 1)],
      'ack.guids: at most 1000 per acknowledgement, not 1001',
    ],
    [
      'too many waiting before the stream is open',
      [guids('a', 600), guids('b', 401)],
      'ack: more than 1000 acknowledged GUIDs waiting to be forwarded; acknowledge only what this stream sent',
    ],
  ])('ends the stream with RESOURCE_EXHAUSTED for %s, and forwards nothing of it', (_name, acks, details) => {
    const { calls, forward } = relay();
    const failures: unknown[] = [];
    const queue = new AckQueue(forward, flow(), (error) => failures.push(error));
    const accepted = acks.map((ack) => queue.add(ack));
    expect(accepted[accepted.length - 1]).toBe(false);
    expect(failures).toHaveLength(1);
    expect(grpcStatusOf(failures[0])).toBe(status.RESOURCE_EXHAUSTED);
    expect((failures[0] as RpcException).message).toBe(details);
    queue.start();
    expect(queue.add(['later'])).toBe(false);
    expect(calls).toHaveLength(0);
  });

  it('ends the stream with the relay’s error when forwarding fails, and forwards nothing more', async () => {
    const { calls, forward } = relay();
    const failures: unknown[] = [];
    const queue = new AckQueue(forward, flow(), (error) => failures.push(error));
    queue.start();
    queue.add(['a']);
    queue.add(['b']);
    const unavailable = new Error('message-relay is unavailable; try again');
    calls[0]?.failWith(unavailable);
    await settle();
    expect(failures).toEqual([unavailable]);
    expect(calls).toHaveLength(1);
  });
});
