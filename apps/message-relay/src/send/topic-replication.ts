import { defaultReplication } from '@sotto/platform/kafka';
import type { RelayEnv } from '../env';

/**
 * How sotto.envelopes.v1 is replicated: as ENVELOPE_TOPIC_REPLICATION and
 * ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS say, each defaulting from the cluster's
 * size (three copies where there are three brokers, two for a write). A
 * minimum above the replication factor would refuse every write, so it is
 * refused here, naming both settings.
 */
export function envelopeTopicReplication(
  env: Pick<RelayEnv, 'ENVELOPE_TOPIC_REPLICATION' | 'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS'>,
  brokers: number,
): { replicationFactor: number; minInsyncReplicas: number } {
  const chosen = defaultReplication(brokers, {
    replicationFactor: env.ENVELOPE_TOPIC_REPLICATION,
    minInsyncReplicas: env.ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS,
  });
  if (chosen.minInsyncReplicas > chosen.replicationFactor) {
    throw new Error(
      `ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS (${chosen.minInsyncReplicas}) is more than the topic's replication factor ` +
        `(${chosen.replicationFactor}${env.ENVELOPE_TOPIC_REPLICATION === undefined ? `, from ${brokers} broker${brokers === 1 ? '' : 's'}` : ', ENVELOPE_TOPIC_REPLICATION'}): no write could ever succeed`,
    );
  }
  return chosen;
}
