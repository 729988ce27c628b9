import { Transport, type GrpcOptions } from '@nestjs/microservices';
import { PROTO_LOADER_OPTIONS, type ServiceContract } from '@sotto/contracts';

/**
 * Every address the name resolves to gets a connection and calls go round
 * them in turn. Behind a headless Kubernetes Service (one DNS record per
 * pod) that spreads calls over all replicas; a single long-lived HTTP/2
 * connection to a ClusterIP would pin every call to one pod.
 */
const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/** Options for a NestJS ClientGrpc that calls another service through its contract. */
export function grpcClientOptions(
  contract: ServiceContract,
  url: string,
): GrpcOptions & { transport: Transport.GRPC } {
  return {
    transport: Transport.GRPC,
    options: {
      url,
      package: contract.package,
      protoPath: [...contract.protoFiles],
      loader: PROTO_LOADER_OPTIONS,
      channelOptions: {
        'grpc.keepalive_time_ms': 30_000,
        'grpc.keepalive_timeout_ms': 10_000,
        'grpc.service_config': ROUND_ROBIN,
      },
    },
  };
}
