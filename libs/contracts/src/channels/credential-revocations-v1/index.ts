import { CredentialRevocation } from '../../generated/sotto/gateway/v1/credential_revocation';
import { encodeToBuffer } from '../../wire-encoding';

/**
 * Redis pub/sub among gateways: one channel for the whole deployment,
 * carrying protobuf `sotto.gateway.v1.CredentialRevocation`s. A gateway
 * publishes one after the directory committed a sign-out or a secret
 * rotation; every gateway drops its cached authentications of those devices.
 * Pub/sub delivers at most once, so a subscriber that reconnects must assume
 * it missed some and drop its whole cache.
 */
export const CHANNEL = 'sotto:credential-revocations:v1';

export type Event = CredentialRevocation;

export function encode(event: CredentialRevocation): Buffer {
  return encodeToBuffer(CredentialRevocation, event);
}

export function decode(bytes: Uint8Array): CredentialRevocation {
  return CredentialRevocation.decode(bytes);
}
