import type { Consumer, Producer, RequestEvent } from 'kafkajs';
import { Counter, type Registry } from 'prom-client';

const NAME = 'sotto_kafka_requests_total';

/**
 * Counts the requests a producer or consumer sends to Kafka, by API (Produce,
 * Fetch, OffsetCommit, Heartbeat, …): the figure that says whether sends and
 * routing are batched (requests per message) and what the brokers are asked
 * to do, which their CPU follows.
 */
export function countKafkaRequests(
  client: { producer: Producer } | { consumer: Consumer },
  registry: Registry,
): void {
  const counter =
    (registry.getSingleMetric(NAME) as Counter<'client' | 'api'> | undefined) ??
    new Counter({
      name: NAME,
      help: 'Requests sent to Kafka, by client (producer, consumer) and API.',
      labelNames: ['client', 'api'],
      registers: [registry],
    });
  const count = (role: string, event: RequestEvent): void => {
    counter.inc({ client: role, api: event.payload.apiName });
  };
  if ('producer' in client) {
    client.producer.on(client.producer.events.REQUEST, (event) => count('producer', event));
  } else {
    client.consumer.on(client.consumer.events.REQUEST, (event) => count('consumer', event));
  }
}
