import { Transport, type GrpcOptions } from '@nestjs/microservices';
import { PROTO_LOADER_OPTIONS, type ServiceContract } from '@sotto/contracts';

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
      },
    },
  };
}
