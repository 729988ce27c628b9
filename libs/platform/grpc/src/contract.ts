/**
 * NestJS on the generated contracts. Each service's grpc-js definition from
 * `@sotto/contracts/generated` (ts-proto, `outputServices=grpc-js`) carries the
 * method paths and the message codecs; the same definition serves the
 * NestJS server, so servers, the client SDK and the tests decode every
 * message into the one generated type for it.
 */
import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerDuplexStream,
  type ServerInterceptor,
  type ServerReadableStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { GrpcMethod, GrpcStreamMethod } from '@nestjs/microservices';
import type { Observable } from 'rxjs';
import type { Type } from '@nestjs/common';
import { serviceNameOf } from '@sotto/contracts';
import { isDirect, recordDirectMethods, type DirectHandler } from './direct';

/** One method of a generated service definition, as far as these helpers need it. */
export interface MethodShape {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestDeserialize: (bytes: Buffer) => unknown;
  readonly responseSerialize: (message: never) => Buffer;
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
 * The methods named in `Direct` (marked @Direct()) have a direct handler's type.
 */
export type GrpcController<S extends ServiceShape, Direct extends keyof S = never> = {
  [K in keyof S]: K extends Direct ? DirectHandler<S[K]> : Handler<S[K]>;
};

/**
 * Binds a controller's methods to a service: every RPC of the definition
 * becomes a NestJS gRPC handler (a stream handler for client- and
 * bidirectional streams), except those marked @Direct(), which
 * serveDirectMethods serves. Throws at start-up if the class lacks a method.
 */
export function GrpcService(definition: ServiceShape): (target: Type) => void {
  const qualified = serviceNameOf(definition);
  const service = qualified.slice(qualified.lastIndexOf('.') + 1);
  return (target) => {
    const prototype = target.prototype as object;
    const direct: string[] = [];
    for (const [method, shape] of Object.entries(definition)) {
      const descriptor = Object.getOwnPropertyDescriptor(prototype, method);
      if (typeof descriptor?.value !== 'function') {
        throw new Error(`${target.name} does not implement ${qualified}.${method}`);
      }
      if (isDirect(descriptor.value)) {
        direct.push(method);
        continue;
      }
      const decorate = shape.requestStream ? GrpcStreamMethod(service, method) : GrpcMethod(service, method);
      decorate(prototype, method, descriptor);
      Object.defineProperty(prototype, method, descriptor);
    }
    recordDirectMethods(target, definition, direct);
  };
}

/**
 * The services as a grpc-js package definition, keyed by their fully qualified
 * names, for NestJS's `packageDefinition` option: the server then decodes and
 * encodes with the generated codecs. A request that does not decode (or holds
 * a string that is not UTF-8) becomes an UndecodableRequest instead of an
 * exception, which grpc-js would answer with INTERNAL;
 * refuseUndecodableRequests answers it with INVALID_ARGUMENT.
 */
export function packageDefinitionOf(
  definitions: readonly ServiceDefinition[],
): Record<string, ServiceDefinition> {
  return Object.fromEntries(
    definitions.map((definition) => [serviceNameOf(definition), withTolerantDecoding(definition)]),
  );
}

/** A request message that could not be decoded, and why, in words for the caller. */
export class UndecodableRequest {
  constructor(readonly problem: string) {}
}

class InvalidUtf8 extends Error {}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * proto3 strings must be UTF-8. The generated codecs decode leniently,
 * replacing bad bytes with U+FFFD, so a malformed name or id would arrive
 * as a different, valid-looking string; this decoder refuses it instead.
 */
function strictUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new InvalidUtf8();
  }
}

/**
 * Walks the message's top-level fields as the protobuf wire format defines
 * them. The generated codecs stop reading, without a word, at a field number
 * 0 or an end-group tag, so bytes after one would otherwise be ignored.
 */
function checkFields(bytes: Buffer): void {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (wireType === WireType.EndGroup)
      throw new Error(`an end-group tag of field ${fieldNo} without a start`);
    reader.skip(wireType, fieldNo);
  }
}

/**
 * Decodes as `decode` does, with a reader that refuses invalid UTF-8, and
 * never throws. The generated `requestDeserialize` passes its argument to the
 * message's `decode`, which takes a BinaryReader as well as bytes: that is how
 * the strict reader reaches every string field, nested messages included.
 */
export function decodeOrRefuse(decode: (bytes: Buffer) => unknown): (bytes: Buffer) => unknown {
  const decodeFrom = decode as unknown as (reader: BinaryReader) => unknown;
  return (bytes) => {
    try {
      checkFields(bytes);
      return decodeFrom(new BinaryReader(bytes, strictUtf8));
    } catch (error) {
      return new UndecodableRequest(
        error instanceof InvalidUtf8
          ? 'request: a string field is not valid UTF-8'
          : `request: not a valid protobuf message (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  };
}

function withTolerantDecoding(definition: ServiceDefinition): ServiceDefinition {
  return Object.fromEntries(
    Object.entries(definition).map(([name, method]) => [
      name,
      { ...method, requestDeserialize: decodeOrRefuse(method.requestDeserialize) },
    ]),
  );
}

/**
 * Answers a request message that did not decode with INVALID_ARGUMENT naming
 * the problem, before any guard or handler sees it; for a stream, at the
 * message that did not decode. Every server built by createGrpcMicroservice
 * has it.
 */
export const refuseUndecodableRequests: ServerInterceptor = (_method, call) =>
  new ServerInterceptingCall(call, {
    start: (next) =>
      next({
        onReceiveMessage: (message: unknown, pass: (message: unknown) => void) => {
          if (message instanceof UndecodableRequest) {
            call.sendStatus({
              code: status.INVALID_ARGUMENT,
              details: message.problem,
              metadata: new Metadata(),
            });
          } else {
            pass(message);
          }
        },
      }),
  });
