import { readFileSync } from 'node:fs';
import {
  Client,
  Metadata,
  Server,
  ServerCredentials,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { PeerIdentity, ServiceIdentity } from '@sotto/contracts';
import { freePort } from '@sotto/local-infra';
import { callerCredentials, identityFiles } from './tls';

/** A service of an earlier release, in front of the real one. */
export interface OlderService {
  /** Where it listens, to give the service that calls it in place of the real one. */
  readonly address: string;
  /** How many calls of each method (by its name in the generated definition) it passed on. */
  readonly calls: Map<string, number>;
  stop(): Promise<void>;
}

/** Bytes in, bytes out: requests are passed on without decoding them. */
const raw = (bytes: Buffer): Buffer => bytes;

/**
 * A release of `identity` from before the methods `without` existed: it
 * serves every other unary method of `definition` by passing the call on to
 * the real service at `target`, as `caller`, over mutual TLS, and does not
 * register `without` at all, so those are answered UNIMPLEMENTED as any gRPC
 * server answers a method it does not know. For testing that a newer caller
 * falls back when the service it calls is older, as it is mid-upgrade.
 */
export async function startOlderService(options: {
  readonly identity: ServiceIdentity;
  readonly definition: ServiceDefinition;
  readonly target: string;
  readonly caller: PeerIdentity;
  readonly without: readonly string[];
}): Promise<OlderService> {
  const upstream = new Client(options.target, callerCredentials(options.caller));
  const calls = new Map<string, number>();
  const definition: Record<string, ServiceDefinition[string]> = {};
  const handlers: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(options.definition)) {
    if (options.without.includes(name) || method.requestStream || method.responseStream) continue;
    definition[name] = {
      ...method,
      requestSerialize: raw,
      requestDeserialize: raw,
      responseSerialize: raw,
      responseDeserialize: raw,
    };
    handlers[name] = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      calls.set(name, (calls.get(name) ?? 0) + 1);
      upstream.makeUnaryRequest(
        method.path,
        raw,
        raw,
        call.request,
        new Metadata(),
        (error: ServiceError | null, response?: Buffer) =>
          error ? callback(error) : callback(null, response),
      );
    };
  }
  const tls = identityFiles(options.identity);
  const server = new Server();
  server.addService(definition, handlers);
  const address = `127.0.0.1:${await freePort()}`;
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(
      address,
      ServerCredentials.createSsl(
        readFileSync(tls.ca),
        [{ private_key: readFileSync(tls.key), cert_chain: readFileSync(tls.cert) }],
        true,
      ),
      (error) => (error ? reject(error) : resolve()),
    ),
  );
  return {
    address,
    calls,
    stop: async () => {
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      upstream.close();
    },
  };
}
