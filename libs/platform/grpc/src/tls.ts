import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { TLSSocket, type SecureContextOptions } from 'node:tls';
import {
  Metadata,
  ServerCredentials,
  ServerInterceptingCall,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import {
  identityFromSubjectAltName,
  mayCall,
  TLS_MIN_VERSION,
  type PeerIdentity,
  type ServiceIdentity,
  type TlsFiles,
} from '@sotto/contracts';

/**
 * How many metadata entries a call may carry. Node's HTTP/2 server refuses
 * more than 128 by default with a stream reset that, when the connection is
 * writing at the time, carries INTERNAL_ERROR instead of ENHANCE_YOUR_CALM, so
 * a client sees INTERNAL. With the count this high, what bounds metadata is
 * the header list size every HTTP/2 peer is told in SETTINGS (64 KiB), which
 * clients check before sending.
 */
export const MAX_METADATA_ENTRIES = 4096;

/**
 * A TLS 1.3-only server: grpc-js's own createSsl cannot refuse older
 * versions, so this sets the minimum on both the server and its secure
 * context. With `requireClientCertificate`, a client without a certificate
 * from the CA fails the handshake; `interceptors` then see every call.
 */
class Tls13ServerCredentials extends ServerCredentials {
  constructor(
    requireClientCertificate: boolean,
    context: SecureContextOptions,
    private readonly interceptors: ServerInterceptor[],
  ) {
    super(
      {
        requestCert: requireClientCertificate,
        rejectUnauthorized: true,
        minVersion: TLS_MIN_VERSION,
        maxHeaderListPairs: MAX_METADATA_ENTRIES,
      },
      { ...context, minVersion: TLS_MIN_VERSION },
    );
  }

  override _getInterceptors(): ServerInterceptor[] {
    return this.interceptors;
  }

  _equals(other: ServerCredentials): boolean {
    return other === this;
  }
}

/** What a refused call is told, and what the log says about it. */
export interface Refusal {
  readonly caller: PeerIdentity | undefined;
  readonly method: string;
}

/**
 * Lets a call through only if the topology allows the identity in the
 * caller's certificate to call that method of `service`; anyone else gets
 * PERMISSION_DENIED before the handler or the request is read.
 */
export function topologyInterceptor(
  service: ServiceIdentity,
  onRefused: (refusal: Refusal) => void = () => undefined,
): ServerInterceptor {
  // A connection's certificate is the same for every call on it, and reading it costs more than a
  // small call: the identity is worked out once per TLS connection.
  const identities = new WeakMap<object, PeerIdentity | undefined>();
  return (method, call) => {
    const socket = tlsSocketOf(call);
    let caller: PeerIdentity | undefined;
    if (socket !== undefined && identities.has(socket)) {
      caller = identities.get(socket);
    } else {
      caller = identityFromSubjectAltName(call.getAuthContext().sslPeerCertificate?.subjectaltname);
      if (socket !== undefined) identities.set(socket, caller);
    }
    if (caller !== undefined && mayCall(service, caller, method.path))
      return new ServerInterceptingCall(call);
    onRefused({ caller, method: method.path });
    const details =
      caller === undefined
        ? 'caller: its certificate names no Sotto identity'
        : `caller: ${caller} may not call ${method.path}`;
    return new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: () =>
            call.sendStatus({ code: status.PERMISSION_DENIED, details, metadata: new Metadata() }),
        }),
    });
  };
}

/**
 * The verified TLS connection a call arrived on, when grpc-js lets it be
 * seen (its server call keeps the HTTP/2 stream); undefined otherwise, and
 * the certificate is then read for each call.
 */
function tlsSocketOf(call: unknown): object | undefined {
  const socket = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session?.socket;
  return socket instanceof TLSSocket && socket.authorized ? socket : undefined;
}

/**
 * Fails unless `tls.cert` names this service and chains to `tls.ca`: a
 * service started with another's certificate would pass for it, and one
 * whose certificate the CA did not issue would be refused by every peer.
 */
export function checkOwnCertificate(service: ServiceIdentity, tls: TlsFiles): void {
  const certificate = new X509Certificate(readFileSync(tls.cert));
  const named = identityFromSubjectAltName(certificate.subjectAltName);
  if (named !== service) {
    throw new Error(`GRPC_TLS_CERT names ${named ?? 'no Sotto identity'}, not spiffe://sotto/${service}`);
  }
  const ca = new X509Certificate(readFileSync(tls.ca));
  if (!certificate.checkIssued(ca) || !certificate.verify(ca.publicKey)) {
    throw new Error('GRPC_TLS_CERT was not issued by the CA in GRPC_TLS_CA');
  }
}

/** Where a service finds its certificates. */
export interface ServerTls extends TlsFiles {
  /** The gateway's certificate for the public, when it differs from its identity in the platform. */
  readonly publicCert?: string;
  readonly publicKey?: string;
}

/**
 * The gRPC server's credentials. The public API (the gateway) serves TLS 1.3
 * to anyone; every other service serves TLS 1.3 only to clients with a
 * certificate from the platform's CA, and each call only if the topology
 * lets that certificate's identity call that method.
 */
export function serverCredentials(
  service: ServiceIdentity,
  tls: ServerTls,
  options: { publicApi: boolean; onRefused?: (refusal: Refusal) => void },
): ServerCredentials {
  if (options.publicApi) {
    return new Tls13ServerCredentials(
      false,
      { cert: readFileSync(tls.publicCert ?? tls.cert), key: readFileSync(tls.publicKey ?? tls.key) },
      [],
    );
  }
  return new Tls13ServerCredentials(
    true,
    { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) },
    [topologyInterceptor(service, options.onRefused)],
  );
}
