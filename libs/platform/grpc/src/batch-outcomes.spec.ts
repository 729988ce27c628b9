import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { answerEach, callErrorOf, errorOfCall, MAX_BATCH_CALLS, outcomesOf } from './batch-outcomes';
import { DependencyUnavailableError, grpcError } from './errors';
import { refuse, REFUSAL_TRAILER } from './refusals';

describe('batched call outcomes', () => {
  const noBug = (): void => {
    throw new Error('no bug expected');
  };

  it('carries a refusal with its code, message and trailers, as the call alone would have failed', () => {
    const trailers = new Metadata();
    trailers.set('sotto-mismatched-devices-bin', Buffer.from([1, 2, 3]));
    const carried = callErrorOf(
      refuse('device-list-mismatch', 'device list mismatch: missing [2]', trailers),
      noBug,
    );
    const error = errorOfCall('message-relay', carried) as unknown as { getError(): ServiceError };
    const inner = error.getError();
    expect(inner.code).toBe(status.FAILED_PRECONDITION);
    expect(inner.message).toBe('device list mismatch: missing [2]');
    expect(inner.metadata.get('sotto-mismatched-devices-bin')).toEqual([Buffer.from([1, 2, 3])]);
    expect(inner.metadata.get(REFUSAL_TRAILER)).toEqual(['device-list-mismatch']);
  });

  it('turns an unreachable service inside the batch into UNAVAILABLE naming the service called', () => {
    const carried = callErrorOf(
      grpcError(status.UNAVAILABLE, 'prekey-directory is unavailable; try again'),
      noBug,
    );
    const error = errorOfCall('message-relay', carried) as unknown as { getError(): ServiceError };
    expect(error.getError()).toMatchObject({
      code: status.UNAVAILABLE,
      message: 'message-relay is unavailable; try again',
    });
  });

  it('answers a dependency that is down UNAVAILABLE, as a call alone is answered, not as a bug', () => {
    const carried = callErrorOf(
      new DependencyUnavailableError('mailboxes', 'Redis failed: Connection is closed.'),
      noBug,
    );
    expect(carried).toEqual({
      code: status.UNAVAILABLE,
      details: 'mailboxes are unavailable (Redis failed: Connection is closed.); try again',
      trailers: [],
    });
  });

  it('answers a bug INTERNAL with only a correlation id, and reports the bug', () => {
    const bugs: [string, unknown][] = [];
    const carried = callErrorOf(new TypeError('x is undefined'), (id, error) => bugs.push([id, error]));
    expect(carried.code).toBe(status.INTERNAL);
    expect(carried.details).toBe(`internal error (correlation id ${bugs[0]?.[0]})`);
    expect(carried.trailers).toEqual([]);
    expect(bugs[0]?.[1]).toBeInstanceOf(TypeError);
  });

  it("answers each call on its own: one's error holds up no other", async () => {
    const answers = await answerEach(
      [1, 2, 3],
      (n) => (n === 2 ? Promise.reject(refuse('mailbox-full', 'mailbox full')) : Promise.resolve(n * 10)),
      noBug,
    );
    expect(answers[0]).toEqual({ ok: 10 });
    expect(answers[1]).toMatchObject({ error: { code: status.RESOURCE_EXHAUSTED, details: 'mailbox full' } });
    expect(answers[2]).toEqual({ ok: 30 });
    const outcomes = outcomesOf('message-relay', answers);
    expect(outcomes[0]).toEqual({ ok: 10 });
    expect('error' in outcomes[1] && outcomes[1].error.message).toContain('mailbox full');
  });

  it('refuses a batch of more calls than it may carry, whole', async () => {
    const handled: number[] = [];
    const calls = Array.from({ length: MAX_BATCH_CALLS + 1 }, (_, index) => index);
    await expect(answerEach(calls, (n) => Promise.resolve(handled.push(n)), noBug)).rejects.toMatchObject({
      error: { code: status.RESOURCE_EXHAUSTED },
    });
    expect(handled).toEqual([]);
  });

  it('says so when an answer holds neither a response nor an error', () => {
    const [outcome] = outcomesOf<number>('message-relay', [{}]);
    expect(outcome).toEqual({
      error: new Error('message-relay answered a batched call with neither a response nor an error'),
    });
  });
});
