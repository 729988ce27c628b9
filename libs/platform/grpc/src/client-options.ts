import type { ChannelOptions } from '@grpc/grpc-js';
import { INTERNAL_SERVER_LIMITS } from './server-limits';

/**
 * Every address the name resolves to gets a connection and calls go round
 * them in turn. Behind a headless Kubernetes Service (one DNS record per
 * pod) that spreads calls over all replicas; a single long-lived HTTP/2
 * connection to a ClusterIP would pin every call to one pod.
 */
const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/** Channel options for calls from one Sotto service to another. */
export function internalChannelOptions(): ChannelOptions {
  return {
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.service_config': ROUND_ROBIN,
    // As large as the services take: a batch call is larger than gRPC's default 4 MiB allows.
    'grpc.max_send_message_length': INTERNAL_SERVER_LIMITS.maxSendBytes,
    'grpc.max_receive_message_length': INTERNAL_SERVER_LIMITS.maxReceiveBytes,
  };
}
