import type { ChannelOptions } from '@grpc/grpc-js';

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
  };
}
