/**
 * NestJS on the generated contracts. Each service's grpc-js definition from
 * `@sotto/contracts/generated` (ts-proto, `outputServices=grpc-js`) carries the
 * method paths and the message codecs; the same definition serves the
 * NestJS server, so servers, the client SDK and the tests decode every
 * message into the one generated type for it.
 */
import type {
  Metadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
} from '@grpc/grpc-js';
import { GrpcMethod, GrpcStreamMethod } from '@nestjs/microservices';
import type { Observable } from 'rxjs';
import { serviceNameOf } from '@sotto/contracts';

/** One method of a generated service definition, as far as these helpers need it. */
interface MethodShape {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestDeserialize: (bytes: Buffer) => unknown;
  readonly responseDeserialize: (bytes: Buffer) => unknown;
}

/** A generated service definition: `RelayServiceService`, `GatewayServiceService`, … */
export type ServiceShape = { readonly [method: string]: MethodShape };

export type RequestOf<M extends MethodShape> = ReturnType<M['requestDeserialize']>;
export type ResponseOf<M extends MethodShape> = ReturnType<M['responseDeserialize']>;

type Handler<M extends MethodShape> = M['requestStream'] extends true
  ? M['responseStream'] extends true
    ? (
        requests: Observable<RequestOf<M>>,
        metadata: Metadata,
        call: ServerDuplexStream<RequestOf<M>, ResponseOf<M>>,
      ) => Observable<ResponseOf<M>>
    : (
        requests: Observable<RequestOf<M>>,
        metadata: Metadata,
        call: ServerReadableStream<RequestOf<M>, ResponseOf<M>>,
      ) => Observable<ResponseOf<M>> | Promise<ResponseOf<M>>
  : M['responseStream'] extends true
    ? (
        request: RequestOf<M>,
        metadata: Metadata,
        call: ServerWritableStream<RequestOf<M>, ResponseOf<M>>,
      ) => Observable<ResponseOf<M>>
    : (
        request: RequestOf<M>,
        metadata: Metadata,
        call: ServerUnaryCall<RequestOf<M>, ResponseOf<M>>,
      ) => Promise<ResponseOf<M>> | Observable<ResponseOf<M>> | ResponseOf<M>;

/**
 * What a NestJS controller for a service implements: one handler per RPC,
 * named as in the generated definition (`send`, `readMailbox`). A controller
 * declares `implements GrpcController<typeof RelayServiceService>`, so a
 * method missing or typed differently from the contract fails to compile.
 */
export type GrpcController<S extends ServiceShape> = { [K in keyof S]: Handler<S[K]> };

/**
 * Binds a controller's methods to a service: every RPC of the definition
 * becomes a NestJS gRPC handler (a stream handler for client- and
 * bidirectional streams). Throws at start-up if the class lacks a method.
 */
export function GrpcService(definition: ServiceShape): ClassDecorator {
  const qualified = serviceNameOf(definition);
  const service = qualified.slice(qualified.lastIndexOf('.') + 1);
  return (target) => {
    const prototype = target.prototype as object;
    for (const [method, shape] of Object.entries(definition)) {
      const descriptor = Object.getOwnPropertyDescriptor(prototype, method);
      if (typeof descriptor?.value !== 'function') {
        throw new Error(`${target.name} does not implement ${qualified}.${method}`);
      }
      const decorate = shape.requestStream ? GrpcStreamMethod(service, method) : GrpcMethod(service, method);
      decorate(prototype, method, descriptor);
      Object.defineProperty(prototype, method, descriptor);
    }
  };
}

/**
 * The services as a grpc-js package definition, keyed by their fully qualified
 * names, for NestJS's `packageDefinition` option: the server then decodes and
 * encodes with the generated codecs.
 */
export function packageDefinitionOf(
  definitions: readonly ServiceDefinition[],
): Record<string, ServiceDefinition> {
  return Object.fromEntries(definitions.map((definition) => [serviceNameOf(definition), definition]));
}
