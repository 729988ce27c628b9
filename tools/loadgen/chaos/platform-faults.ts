import type { ScratchPlatform } from '@sotto/stack';
import { kafkaBrokerFault, redisMasterFault, serviceFault, type Fault, type KafkaClientTls } from './faults';

/** The faults `npm run chaos --faults` names, and the kind of each. */
export const FAULT_NAMES = {
  relay: 'message-relay',
  gateway: 'gateway',
  kafka: 'kafka-broker',
  redis: 'redis-master',
} as const;
export type FaultName = keyof typeof FAULT_NAMES;

/**
 * The faults of a run on a scratch platform, in the order named: the relay, the gateway, a broker
 * (its Kafka must be a cluster) and a Redis master (its Redis must be a cluster). `operator` is
 * what reaches the Kafka cluster's TLS listeners.
 */
export function platformFaults(
  own: ScratchPlatform,
  operator: KafkaClientTls,
  names: readonly FaultName[] = ['relay', 'gateway', 'kafka'],
): Fault[] {
  const kafka = own.servers.kafka;
  const kafkaTls = (own.infra.storageTls ?? []).includes('kafka') ? operator : undefined;
  return names.map((name) => {
    switch (name) {
      case 'relay':
        return serviceFault(own.platform, 'message-relay');
      case 'gateway':
        return serviceFault(own.platform, 'gateway');
      case 'kafka':
        if (!('nodes' in kafka)) throw new Error('a Kafka broker fault needs a Kafka cluster');
        return kafkaBrokerFault(kafka, kafkaTls);
      case 'redis':
        if (own.redisCluster === undefined) throw new Error('a Redis master fault needs a Redis Cluster');
        return redisMasterFault(own.redisCluster);
    }
  });
}
