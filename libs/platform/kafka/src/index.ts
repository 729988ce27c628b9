export { KafkaModule, KAFKA, KafkaOptions, kafkaClientConfig, type KafkaConnection } from './kafka.module';
export { kafkaEnv, kafkaConnection, type KafkaEnv } from './kafka-env';
export {
  defaultReplication,
  ensureTopic,
  topicMinInsyncReplicas,
  TopicSettingNames,
  TopicSpec,
} from './topics';
export type { Kafka, Producer, Consumer, Admin } from 'kafkajs';
export { countKafkaRequests } from './request-metrics';
export { repairRequestQueue } from './request-queue';
