import type { RecordMetadata } from 'kafkajs';
import { unacknowledged } from './unacknowledged';

const answer = (partition: number, errorCode = 0, topicName = 'sotto.envelopes.v1'): RecordMetadata => ({
  topicName,
  partition,
  errorCode,
  baseOffset: '0',
});

describe('unacknowledged', () => {
  const messages = [
    { partition: 0, value: 'a' },
    { partition: 1, value: 'b' },
    { partition: 2, value: 'c' },
    { partition: 1, value: 'd' },
  ];

  it('is nothing when every partition written was answered without error', () => {
    expect(unacknowledged('sotto.envelopes.v1', messages, [answer(0), answer(1), answer(2)])).toEqual([]);
  });

  it('is every message of a partition the send resolved without (the retry that skipped it)', () => {
    expect(
      unacknowledged('sotto.envelopes.v1', messages, [answer(0), answer(2)]).map((m) => m.value),
    ).toEqual(['b', 'd']);
  });

  it('counts an answer with an error, or for another topic, as no answer', () => {
    expect(
      unacknowledged('sotto.envelopes.v1', messages, [answer(0, 6), answer(1), answer(2, 0, 'other')]).map(
        (m) => m.value,
      ),
    ).toEqual(['a', 'c']);
  });
});
