import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import {
  credentials,
  Metadata,
  status,
  type ChannelCredentials,
  type Client,
  type MethodDefinition,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { caTlsCredentials, mutualTlsCredentials, type PeerIdentity } from '@sotto/contracts';
import { prepareLocalPki, type LocalPki, type StorageServer } from '@sotto/local-infra';
import { PLATFORM_IDENTITIES } from '@sotto/stack';
import { testInfra } from './infra';

/** The CA and certificates the harness made for this test run. */
export function testTls(): LocalPki {
  return testInfra().tls;
}

/**
 * The files of one identity of this run's platform (a service, the operator,
 * or one of the local servers), or of another PKI's.
 */
export function identityFiles(identity: PeerIdentity | StorageServer, pki: LocalPki = testTls()) {
  const files = pki.identities[identity];
  if (files === undefined) throw new Error(`no certificate for ${identity}`);
  return { ca: pki.ca, ...files };
}

/** Mutual TLS as this identity: how a test calls an internal service in the place of its real caller. */
export function callerCredentials(identity: PeerIdentity, pki: LocalPki = testTls()): ChannelCredentials {
  return mutualTlsCredentials(identityFiles(identity, pki));
}

/** TLS trusting this run's CA, with no client certificate: how clients reach the gateway. */
export function gatewayCredentials(): ChannelCredentials {
  return caTlsCredentials(testTls().ca);
}

/** No TLS at all: what every server of the platform must refuse. */
export function plaintextCredentials(): ChannelCredentials {
  return credentials.createInsecure();
}

/**
 * A second CA with certificates for the same identities, names and hosts as
 * the platform's, made in its own directory: what an attacker who cannot get
 * a certificate from the platform's CA makes instead.
 */
export async function foreignPki(): Promise<LocalPki> {
  return prepareLocalPki({
    dir: mkdtempSync(join(testInfra().workDir, 'foreign-ca-')),
    ...PLATFORM_IDENTITIES,
  });
}

/** How a call ended: its status code and details. */
export interface CallOutcome {
  readonly code: status;
  readonly details: string;
}

/**
 * Calls one method with an empty request (or an empty stream) and reports
 * how it ended: what a test needs to see who may call what, whatever the
 * method's kind.
 */
export function callWithEmptyRequest(
  client: Client,
  method: MethodDefinition<unknown, unknown>,
  timeoutMs = 5_000,
): Promise<CallOutcome> {
  return new Promise((resolve) => {
    const { path, requestSerialize: serialize, responseDeserialize: deserialize } = method;
    const options = { deadline: Date.now() + timeoutMs };
    const settle = (error: ServiceError | null): void =>
      resolve(error ? { code: error.code, details: error.details } : { code: status.OK, details: '' });
    const empty = method.requestDeserialize(Buffer.alloc(0));
    if (method.requestStream) {
      const call = method.responseStream
        ? client.makeBidiStreamRequest(path, serialize, deserialize, new Metadata(), options)
        : client.makeClientStreamRequest(path, serialize, deserialize, new Metadata(), options, settle);
      call.on('error', settle);
      call.on('data', () => undefined);
      call.on('status', ({ code, details }: StatusObject) => resolve({ code, details }));
      call.end();
    } else if (method.responseStream) {
      const call = client.makeServerStreamRequest(
        path,
        serialize,
        deserialize,
        empty,
        new Metadata(),
        options,
      );
      call.on('error', settle);
      call.on('data', () => undefined);
      call.on('status', ({ code, details }: StatusObject) => resolve({ code, details }));
    } else {
      client.makeUnaryRequest(path, serialize, deserialize, empty, new Metadata(), options, settle);
    }
  });
}
