export { KafkaModule, KAFKA, KafkaOptions } from './kafka.module';
export { ensureTopic, TopicSpec } from './topics';
export type { Kafka, Producer, Consumer, Admin } from 'kafkajs';
