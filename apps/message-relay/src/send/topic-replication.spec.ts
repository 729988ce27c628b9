import { envelopeTopicReplication } from './topic-replication';

const unset = { ENVELOPE_TOPIC_REPLICATION: undefined, ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: undefined };

describe('envelopeTopicReplication', () => {
  it.each([
    [1, { replicationFactor: 1, minInsyncReplicas: 1 }],
    [2, { replicationFactor: 2, minInsyncReplicas: 2 }],
    [3, { replicationFactor: 3, minInsyncReplicas: 2 }],
    [9, { replicationFactor: 3, minInsyncReplicas: 2 }],
  ])('defaults, on %i brokers, to %j', (brokers, expected) => {
    expect(envelopeTopicReplication(unset, brokers)).toEqual(expected);
  });

  it('takes what is configured over the defaults', () => {
    expect(envelopeTopicReplication({ ...unset, ENVELOPE_TOPIC_REPLICATION: 5 }, 6)).toEqual({
      replicationFactor: 5,
      minInsyncReplicas: 2,
    });
    expect(envelopeTopicReplication({ ...unset, ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: 3 }, 3)).toEqual({
      replicationFactor: 3,
      minInsyncReplicas: 3,
    });
    expect(
      envelopeTopicReplication({ ENVELOPE_TOPIC_REPLICATION: 1, ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: 1 }, 3),
    ).toEqual({ replicationFactor: 1, minInsyncReplicas: 1 });
  });

  it('refuses a minimum no write could meet, naming the settings', () => {
    expect(() => envelopeTopicReplication({ ...unset, ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: 2 }, 1)).toThrow(
      "ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS (2) is more than the topic's replication factor (1, from 1 broker): no write could ever succeed",
    );
    expect(() =>
      envelopeTopicReplication({ ENVELOPE_TOPIC_REPLICATION: 2, ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: 3 }, 3),
    ).toThrow(
      "ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS (3) is more than the topic's replication factor (2, ENVELOPE_TOPIC_REPLICATION): no write could ever succeed",
    );
  });
});
