import {
  Client,
  Metadata,
  status,
  type CallOptions,
  type ClientDuplexStream,
  type ClientReadableStream,
  type ClientWritableStream,
  type ServiceDefinition,
  type ServiceError,
} from '@grpc/grpc-js';
import type { OnApplicationShutdown } from '@nestjs/common';
import {
  mutualTlsCredentials,
  SERVICE_IDENTITIES,
  type ServiceIdentity,
  type TlsFiles,
} from '@sotto/contracts';
import { grpcError } from './errors';
import { internalChannelOptions } from './client-options';
import type { RequestOf, ResponseOf, ServiceShape } from './contract';

// Codes that describe the caller's request; they pass through to the client unchanged.
const PASS_THROUGH = new Set<number>([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.PERMISSION_DENIED,
  status.UNAUTHENTICATED,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
  status.OUT_OF_RANGE,
  status.UNIMPLEMENTED,
  status.ABORTED,
]);

function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'number'
  );
}

/**
 * What the caller should see of another Sotto service's error: errors about
 * the request keep their code, message and metadata; an unreachable service
 * becomes UNAVAILABLE naming it; anything else is returned as it is, for the
 * exception filter to log.
 */
export function upstreamError(service: string, error: unknown): Error {
  if (!isServiceError(error)) return error instanceof Error ? error : new Error(String(error));
  if (PASS_THROUGH.has(error.code)) return grpcError(error.code, error.details, error.metadata);
  if (error.code === status.UNAVAILABLE || error.code === status.DEADLINE_EXCEEDED) {
    return grpcError(status.UNAVAILABLE, `${service} is unavailable; try again`);
  }
  return error;
}

type Method<M extends ServiceShape[string]> = M['requestStream'] extends true
  ? M['responseStream'] extends true
    ? (metadata?: Metadata, options?: Partial<CallOptions>) => ClientDuplexStream<RequestOf<M>, ResponseOf<M>>
    : (
        metadata: Metadata,
        options: Partial<CallOptions>,
        callback: (error: ServiceError | null, response?: ResponseOf<M>) => void,
      ) => ClientWritableStream<RequestOf<M>>
  : M['responseStream'] extends true
    ? (
        request: RequestOf<M>,
        metadata?: Metadata,
        options?: Partial<CallOptions>,
      ) => ClientReadableStream<ResponseOf<M>>
    : (request: RequestOf<M>, metadata?: Metadata, options?: Partial<CallOptions>) => Promise<ResponseOf<M>>;

/**
 * Another Sotto service as its contract describes it. Unary calls return a
 * Promise whose errors are already turned by upstreamError; streaming calls
 * are grpc-js streams, which pause and resume, for relaying bytes with
 * bounded memory.
 */
export type UpstreamClient<S extends ServiceShape> = { readonly [K in keyof S]: Method<S[K]> } & {
  /** Closes the channel; calls in flight fail. */
  close(): void;
};

let ownIdentity: TlsFiles | undefined;

/**
 * The certificate this process calls other services with: a process is one
 * service, with one identity. runService sets it before the application starts.
 */
export function useServiceIdentity(files: TlsFiles): void {
  ownIdentity = files;
}

function isServiceIdentity(name: string): name is ServiceIdentity {
  return (SERVICE_IDENTITIES as readonly string[]).includes(name);
}

/**
 * A client for another Sotto service (`name`, e.g. `message-relay`, as it
 * appears in errors and in its certificate), over mutual TLS as this
 * process's identity, accepting only a server whose certificate names that
 * service; on a channel with keepalive and round-robin over every address
 * the name resolves to.
 */
export function createUpstreamClient<S extends ServiceShape & ServiceDefinition>(
  name: string,
  definition: S,
  address: string,
): UpstreamClient<S> {
  if (!isServiceIdentity(name)) throw new Error(`${name} is not a Sotto service`);
  if (ownIdentity === undefined) throw new Error(`no certificate to call ${name} with: runService sets it`);
  const client = new Client(address, mutualTlsCredentials(ownIdentity, name), internalChannelOptions());
  const methods: Record<string, unknown> = { close: () => client.close() };
  for (const [method, shape] of Object.entries(definition)) {
    const { path, requestSerialize: serialize, responseDeserialize: deserialize } = shape;
    if (shape.requestStream && shape.responseStream) {
      methods[method] = (metadata = new Metadata(), options: Partial<CallOptions> = {}) =>
        client.makeBidiStreamRequest(path, serialize, deserialize, metadata, options);
    } else if (shape.requestStream) {
      methods[method] = (
        metadata: Metadata,
        options: Partial<CallOptions>,
        callback: (error: ServiceError | null, response?: unknown) => void,
      ) => client.makeClientStreamRequest(path, serialize, deserialize, metadata, options, callback);
    } else if (shape.responseStream) {
      methods[method] = (request: unknown, metadata = new Metadata(), options: Partial<CallOptions> = {}) =>
        client.makeServerStreamRequest(path, serialize, deserialize, request, metadata, options);
    } else {
      methods[method] = (request: unknown, metadata = new Metadata(), options: Partial<CallOptions> = {}) =>
        new Promise((resolve, reject) => {
          client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            request,
            metadata,
            options,
            (error, response) => (error ? reject(upstreamError(name, error)) : resolve(response)),
          );
        });
    }
  }
  // Built from the same definition the type is computed from.
  return methods as UpstreamClient<S>;
}

/**
 * A service's clients of the services it calls, as one injectable: each
 * `connect` opens a client, and all of them close when the application stops.
 */
export abstract class UpstreamClients implements OnApplicationShutdown {
  private readonly clients: { close(): void }[] = [];

  protected connect<S extends ServiceShape & ServiceDefinition>(
    name: string,
    definition: S,
    address: string,
  ): UpstreamClient<S> {
    const client = createUpstreamClient(name, definition, address);
    this.clients.push(client);
    return client;
  }

  onApplicationShutdown(): void {
    for (const client of this.clients.splice(0)) client.close();
  }
}
