import type { RecordMetadata } from 'kafkajs';

/**
 * The messages of a produce that Kafka did not acknowledge: those whose
 * partition has no error-free answer among `results`. kafkajs can resolve a
 * send without having written some partitions at all: when a broker dies
 * mid-send and its partitions move to a broker that already answered for
 * others, its retry skips that broker (tulios/kafkajs#1798). Each message
 * must name its partition, so that the answers can be matched to it.
 */
export function unacknowledged<M extends { readonly partition: number }>(
  topic: string,
  messages: readonly M[],
  results: readonly RecordMetadata[],
): M[] {
  const acknowledged = new Set(
    results
      .filter((result) => result.topicName === topic && result.errorCode === 0)
      .map((result) => result.partition),
  );
  return messages.filter((message) => !acknowledged.has(message.partition));
}
