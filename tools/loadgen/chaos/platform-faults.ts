import type { ScratchPlatform } from '@sotto/stack';
import { kafkaBrokerFault, serviceFault, type Fault, type KafkaClientTls } from './faults';

/**
 * The faults of a run on a scratch platform: the relay, the gateway and,
 * when its Kafka is a cluster, a broker. `operator` is what reaches the
 * cluster's TLS listeners.
 */
export function platformFaults(own: ScratchPlatform, operator: KafkaClientTls): Fault[] {
  const kafka = own.servers.kafka;
  const kafkaTls = (own.infra.storageTls ?? []).includes('kafka') ? operator : undefined;
  return [
    serviceFault(own.platform, 'message-relay'),
    serviceFault(own.platform, 'gateway'),
    ...('nodes' in kafka ? [kafkaBrokerFault(kafka, kafkaTls)] : []),
  ];
}
