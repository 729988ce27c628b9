import { status } from '@grpc/grpc-js';
import { RpcException } from '@nestjs/microservices';
import { REFUSALS, REFUSAL_TRAILER, refuse, throttled, type RefusalReason } from './refusals';

const errorOf = (exception: RpcException) =>
  exception.getError() as { code: status; message: string; metadata: { get(key: string): unknown[] } };

describe('the table of refusals', () => {
  it('answers every "too many, too big, too fast" with RESOURCE_EXHAUSTED, and a wrong state with FAILED_PRECONDITION', () => {
    const codes = Object.fromEntries(
      Object.entries(REFUSALS).map(([reason, { code }]) => [reason, status[code]]),
    );
    expect(codes).toEqual({
      'rate-limited': 'RESOURCE_EXHAUSTED',
      'must-wait': 'RESOURCE_EXHAUSTED',
      'too-large': 'RESOURCE_EXHAUSTED',
      'too-many': 'RESOURCE_EXHAUSTED',
      quota: 'RESOURCE_EXHAUSTED',
      'mailbox-full': 'RESOURCE_EXHAUSTED',
      busy: 'RESOURCE_EXHAUSTED',
      'device-list-mismatch': 'FAILED_PRECONDITION',
      'upload-state': 'FAILED_PRECONDITION',
      'device-limit': 'FAILED_PRECONDITION',
      'device-list-stale': 'FAILED_PRECONDITION',
      'vault-destroyed': 'FAILED_PRECONDITION',
    });
  });

  it('names the reason in the sotto-refusal trailer, beside what the caller added', () => {
    for (const reason of Object.keys(REFUSALS) as RefusalReason[]) {
      const error = errorOf(refuse(reason, 'field: problem'));
      expect([reason, error.code, error.message]).toEqual([reason, REFUSALS[reason].code, 'field: problem']);
      expect(error.metadata.get(REFUSAL_TRAILER)).toEqual([reason]);
    }
    const limited = errorOf(throttled('too many messages sent from this device', 1500));
    expect(limited).toMatchObject({
      code: status.RESOURCE_EXHAUSTED,
      message: 'too many messages sent from this device; retry in 2 s',
    });
    expect(limited.metadata.get(REFUSAL_TRAILER)).toEqual(['rate-limited']);
    expect(limited.metadata.get('retry-after-ms')).toEqual(['1500']);
  });
});
