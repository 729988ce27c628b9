import { randomBytes } from 'node:crypto';
import * as opaque from '@serenity-kit/opaque';
import type { VaultMetrics } from '../metrics/vault-metrics';

/** A client's OPAQUE message that does not parse (or is not a valid group element). */
export class MalformedOpaqueMessage extends Error {
  override readonly name = 'MalformedOpaqueMessage';
}

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
const bytes = (text: string): Buffer => Buffer.from(text, 'base64url');

/**
 * The server side of OPAQUE (RFC 9807, ristretto255-SHA512) under the
 * deployment's one server setup. The credential identifier picks the record's
 * OPRF key; it is random per registration, never the account id alone.
 */
export class OpaqueServer {
  constructor(
    private readonly setup: string,
    private readonly metrics: VaultMetrics,
  ) {}

  registrationResponse(credentialIdentifier: Uint8Array, request: Uint8Array): Buffer {
    return this.metrics.timeCpu('registration', () => {
      try {
        return bytes(
          opaque.server.createRegistrationResponse({
            serverSetup: this.setup,
            userIdentifier: b64(credentialIdentifier),
            registrationRequest: b64(request),
          }).registrationResponse,
        );
      } catch (error) {
        throw new MalformedOpaqueMessage(String(error));
      }
    });
  }

  /** KE2 for the client's KE1, and the state FinishLogin needs (secret: it holds the expected MAC). */
  startLogin(
    credentialIdentifier: Uint8Array,
    record: Uint8Array,
    request: Uint8Array,
  ): { response: Buffer; state: Buffer } {
    return this.metrics.timeCpu('start_login', () => {
      try {
        const { loginResponse, serverLoginState } = opaque.server.startLogin({
          serverSetup: this.setup,
          userIdentifier: b64(credentialIdentifier),
          registrationRecord: b64(record),
          startLoginRequest: b64(request),
        });
        return { response: bytes(loginResponse), state: bytes(serverLoginState) };
      } catch (error) {
        throw new MalformedOpaqueMessage(String(error));
      }
    });
  }

  /**
   * Whether a client's registration record can be logged in against: a
   * throwaway login with it, so that a malformed record is refused now rather
   * than lock its owner out later.
   */
  isRecord(record: Uint8Array): boolean {
    const { startLoginRequest } = opaque.client.startLogin({ password: randomBytes(16).toString('hex') });
    try {
      opaque.server.startLogin({
        serverSetup: this.setup,
        userIdentifier: 'record-check',
        registrationRecord: b64(record),
        startLoginRequest,
      });
      return true;
    } catch {
      return false;
    }
  }

  /** Whether the client's KE3 proves it knew the password. */
  finishLogin(state: Uint8Array, finalization: Uint8Array): boolean {
    return this.metrics.timeCpu('finish_login', () => {
      try {
        opaque.server.finishLogin({ serverLoginState: b64(state), finishLoginRequest: b64(finalization) });
        return true;
      } catch {
        // Every 64-byte KE3 parses; the only way to fail is a MAC that does not verify.
        return false;
      }
    });
  }
}
