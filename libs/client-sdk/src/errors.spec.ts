import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { explain, SottoError, ThrottledError } from './errors';

function refusal(details: string, retryAfterMs?: string, reason?: string): ServiceError {
  const metadata = new Metadata();
  if (retryAfterMs !== undefined) metadata.set('retry-after-ms', retryAfterMs);
  if (reason !== undefined) metadata.set('sotto-refusal', reason);
  return Object.assign(new Error(`8 RESOURCE_EXHAUSTED: ${details}`), {
    code: status.RESOURCE_EXHAUSTED,
    details,
    metadata,
  });
}

describe('explain', () => {
  it("keeps the server's words when it answered that something behind it is down", () => {
    const answered = Object.assign(new Error('14 UNAVAILABLE: …'), {
      code: status.UNAVAILABLE,
      details: 'rate limits are unavailable (Redis did not answer within 1000 ms); try again',
      metadata: new Metadata(),
    });
    expect(explain(answered, 'gw:7400')).toMatchObject({
      message: 'server gw:7400: rate limits are unavailable (Redis did not answer within 1000 ms); try again',
      code: status.UNAVAILABLE,
    });
    const unreachable = Object.assign(new Error('14 UNAVAILABLE: …'), {
      code: status.UNAVAILABLE,
      details: 'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7400',
      metadata: new Metadata(),
    });
    expect(explain(unreachable, 'gw:7400').message).toBe('server gw:7400 is unreachable');
  });

  it('passes on what the gateway says when a service behind it did not answer; its own deadline stays plain', () => {
    const deadline = (details: string): ServiceError =>
      Object.assign(new Error(`4 DEADLINE_EXCEEDED: ${details}`), {
        code: status.DEADLINE_EXCEEDED,
        details,
        metadata: new Metadata(),
      });
    const relay =
      'message-relay did not answer within 10000 ms: whether the message was accepted is unknown, and sending it again may deliver it twice';
    expect(explain(deadline(relay), 'gw:7400')).toMatchObject({
      message: `server gw:7400: ${relay}`,
      code: status.DEADLINE_EXCEEDED,
    });
    for (const own of ['Deadline exceeded after 30.002s', 'Deadline exceeded', '']) {
      expect(explain(deadline(own), 'gw:7400').message).toBe('server gw:7400 did not answer in time');
    }
  });

  it('says how long to wait, in seconds from the retry-after-ms trailer, for a throttled call', () => {
    const error = explain(
      refusal('too many messages sent from this device; retry in 2 s', '1200'),
      'gw:7400',
    );
    expect(error).toBeInstanceOf(ThrottledError);
    expect(error).toBeInstanceOf(SottoError);
    expect(error).toMatchObject({
      name: 'ThrottledError',
      message: 'too many messages sent from this device; try again in 2 s',
      code: status.RESOURCE_EXHAUSTED,
      retryAfterMs: 1200,
    });
    expect(error.message).not.toContain('\n');
  });

  it('rounds a wait under a second up to one second, and keeps long waits in seconds', () => {
    expect(explain(refusal('too many connections from this device', '3'), 's').message).toBe(
      'too many connections from this device; try again in 1 s',
    );
    expect(
      explain(refusal('too many registrations from this address; retry in 180 s', '180000'), 's'),
    ).toMatchObject({
      message: 'too many registrations from this address; try again in 180 s',
      retryAfterMs: 180_000,
    });
  });

  it('passes a refusal with no wait, or a wait that is not a number, on as the server wrote it', () => {
    for (const value of [undefined, '', 'soon', '-5', '1e9']) {
      const error = explain(refusal('one_time_pre_keys: a device keeps at most 1000', value), 's');
      expect(error).toMatchObject({
        message: 'one_time_pre_keys: a device keeps at most 1000',
        code: status.RESOURCE_EXHAUSTED,
      });
      expect(error).toBeInstanceOf(SottoError);
      expect(error).not.toBeInstanceOf(ThrottledError);
      expect(error instanceof SottoError ? error.retryAfterMs : 'not a SottoError').toBeUndefined();
    }
  });

  it("names the refusal's reason from the sotto-refusal trailer, and ignores one that is not a reason", () => {
    expect(explain(refusal('mailbox full: …', undefined, 'mailbox-full'), 's')).toMatchObject({
      reason: 'mailbox-full',
      retryAfterMs: undefined,
    });
    expect(explain(refusal('too many …; retry in 2 s', '1200', 'rate-limited'), 's')).toMatchObject({
      name: 'ThrottledError',
      reason: 'rate-limited',
    });
    for (const garbage of ['', 'Mailbox Full', 'x'.repeat(41), 'rate_limited; drop']) {
      expect(explain(refusal('refused', undefined, garbage), 's')).toMatchObject({ reason: undefined });
    }
  });
});
