import { join } from 'node:path';
import type { Options } from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** Root of the .proto tree: imports are written relative to it (`sotto/common/v1/keys.proto`). */
export const PROTO_ROOT = join(__dirname, '..', 'proto');

/** grpc.health.v1, served by every gRPC server next to its own services. */
export const HEALTH_PROTO_PATH = healthProtoPath;

/**
 * How @grpc/proto-loader reads the .proto files, for server reflection and
 * for tools that want descriptors. Messages are never encoded or decoded
 * through it: that is the generated code's job (buf.gen.yaml).
 */
export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};
