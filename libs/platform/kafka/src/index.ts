export { KafkaModule, KAFKA, KafkaOptions, kafkaClientConfig, type KafkaConnection } from './kafka.module';
export { kafkaEnv, kafkaConnection, type KafkaEnv } from './kafka-env';
export { ensureTopic, TopicSpec } from './topics';
export type { Kafka, Producer, Consumer, Admin } from 'kafkajs';
