import { createHash } from 'node:crypto';
import { PublicKey } from '@signalapp/libsignal-client';
import { bytes } from './client/bytes';
import { SottoError } from './errors';

/** The first byte of every link code: which layout follows. */
const LINK_CODE_VERSION = 1;
/** CreateLink's tokens are 32 bytes. */
export const LINK_TOKEN_BYTES = 32;
/** A serialized libsignal (Curve25519) public key: a type byte and 32 bytes. */
const PUBLIC_KEY_BYTES = 33;
const CODE_BYTES = 1 + LINK_TOKEN_BYTES + PUBLIC_KEY_BYTES;

/**
 * What a new device shows the device that approves it: the one-time token
 * the server gave it, and the public half of the key pair the account's
 * state is sealed to. Neither is secret from the server (it saw the token);
 * what matters is that the approving device seals to the key the new device
 * holds, which the user checks by comparing fingerprints.
 */
export interface LinkCode {
  readonly token: Uint8Array;
  readonly publicKey: PublicKey;
}

/** The code as text: base64url (no padding) of a version byte, the token and the public key. */
export function encodeLinkCode(code: LinkCode): string {
  if (code.token.length !== LINK_TOKEN_BYTES) {
    throw new SottoError(`a link token is ${LINK_TOKEN_BYTES} bytes, not ${code.token.length}`);
  }
  return Buffer.concat([Buffer.from([LINK_CODE_VERSION]), code.token, code.publicKey.serialize()]).toString(
    'base64url',
  );
}

/** Reads a code as typed or pasted (surrounding blanks ignored); anything else is refused, naming what is wrong. */
export function decodeLinkCode(text: string): LinkCode {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9_-]+$/.test(trimmed)) {
    throw new SottoError('not a link code: it has characters a link code never has');
  }
  const data = Buffer.from(trimmed, 'base64url');
  if (data.length !== CODE_BYTES || data.toString('base64url') !== trimmed) {
    throw new SottoError('not a link code: wrong length (was it copied whole?)');
  }
  if (data[0] !== LINK_CODE_VERSION) {
    throw new SottoError(`not a link code this version understands (version ${data[0]})`);
  }
  let publicKey: PublicKey;
  try {
    publicKey = PublicKey.deserialize(bytes(data.subarray(1 + LINK_TOKEN_BYTES)));
  } catch {
    throw new SottoError('not a link code: its key is not a public key');
  }
  return { token: new Uint8Array(data.subarray(1, 1 + LINK_TOKEN_BYTES)), publicKey };
}

/**
 * What both devices show so the user can check that the code approved is the
 * one the new device made: 20 digits in groups of 5 from SHA-256 of the
 * public key (about 66 bits; a forger would need a key matching it during
 * the token's few minutes).
 */
export function linkFingerprint(publicKey: PublicKey): string {
  const digest = createHash('sha256')
    .update('sotto link fingerprint v1\0')
    .update(publicKey.serialize())
    .digest();
  const groups: string[] = [];
  for (let i = 0; i < 4; i++) {
    groups.push(String(digest.readUIntBE(i * 5, 5) % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}
