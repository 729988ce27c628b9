import { status } from '@grpc/grpc-js';
import { KEMPublicKey, PublicKey } from '@signalapp/libsignal-client';
import type { EcPreKey, KyberPreKey, SignedEcPreKey } from '@sotto/contracts/generated/sotto/common/v1/keys';
import { grpcError, refuse } from '@sotto/platform/grpc';

/** Limits on one request: no account may push more than this at once. */
export const MAX_ONE_TIME_KEYS_PER_REQUEST = 100;
/** libsignal registration ids are 14 bits and never 0. */
const MAX_REGISTRATION_ID = 0x3fff;

/** A prekey signed by the identity key: the signed EC prekey, or a Kyber prekey. */
export type SignedPreKey = SignedEcPreKey | KyberPreKey;

/** The validated keys, ready to store. Bytes are kept exactly as the client sent them. */
export interface ValidatedKeys {
  readonly signedPreKey?: SignedEcPreKey;
  readonly kyberLastResort?: KyberPreKey;
  readonly oneTimeEc: readonly EcPreKey[];
  readonly oneTimeKyber: readonly KyberPreKey[];
}

function invalid(field: string, problem: string): Error {
  return grpcError(status.INVALID_ARGUMENT, `${field}: ${problem}`);
}

// libsignal wants bytes backed by a plain ArrayBuffer; gRPC hands out Buffers over a shared pool.
function own(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return new Uint8Array(bytes);
}

export function parseIdentityKey(bytes: Uint8Array | undefined, field = 'identity_key'): PublicKey {
  if (!bytes || bytes.length === 0) throw invalid(field, 'is required');
  try {
    return PublicKey.deserialize(own(bytes));
  } catch {
    throw invalid(field, 'is not a serialized libsignal public key');
  }
}

export function checkRegistrationId(value: number, field: string): void {
  if (!Number.isInteger(value) || value < 1 || value > MAX_REGISTRATION_ID) {
    throw invalid(field, `must be between 1 and ${MAX_REGISTRATION_ID}`);
  }
}

function checkEcKey(key: EcPreKey, field: string): void {
  if (!key.publicKey || key.publicKey.length === 0) throw invalid(`${field}.public_key`, 'is required');
  try {
    PublicKey.deserialize(own(key.publicKey));
  } catch {
    throw invalid(`${field}.public_key`, 'is not a serialized libsignal public key');
  }
}

function checkSignature(identity: PublicKey, key: SignedPreKey, field: string): void {
  if (!key.signature || key.signature.length === 0) throw invalid(`${field}.signature`, 'is required');
  let valid = false;
  try {
    valid = identity.verify(own(key.publicKey), own(key.signature));
  } catch {
    valid = false;
  }
  if (!valid) throw invalid(`${field}.signature`, 'does not verify against the identity key');
}

function checkSignedEcKey(identity: PublicKey, key: SignedEcPreKey, field: string): void {
  checkEcKey(key, field);
  checkSignature(identity, key, field);
}

function checkKyberKey(identity: PublicKey, key: KyberPreKey, field: string): void {
  if (!key.publicKey || key.publicKey.length === 0) throw invalid(`${field}.public_key`, 'is required');
  try {
    KEMPublicKey.deserialize(own(key.publicKey));
  } catch {
    throw invalid(`${field}.public_key`, 'is not a serialized libsignal Kyber public key');
  }
  checkSignature(identity, key, field);
}

function checkUniqueIds(keys: readonly { keyId: number }[], field: string): void {
  const seen = new Set<number>();
  keys.forEach((key, index) => {
    if (seen.has(key.keyId)) throw invalid(`${field}[${index}].key_id`, `repeats key id ${key.keyId}`);
    seen.add(key.keyId);
  });
}

/**
 * Checks every key of a registration or refill, and every signature against
 * the identity key, before anything is stored. The first problem found is
 * reported with the path of the field that has it.
 */
export function validateKeys(
  identity: PublicKey,
  keys: {
    signedPreKey?: SignedEcPreKey | undefined;
    kyberLastResort?: KyberPreKey | undefined;
    oneTimeEc: readonly EcPreKey[];
    oneTimeKyber: readonly KyberPreKey[];
  },
  fields: {
    prefix: string;
    signedPreKey: string;
    kyberLastResort: string;
    oneTimeEc: string;
    oneTimeKyber: string;
  },
): ValidatedKeys {
  const path = (name: string): string => (fields.prefix ? `${fields.prefix}.${name}` : name);
  if (keys.oneTimeEc.length > MAX_ONE_TIME_KEYS_PER_REQUEST) {
    throw refuse(
      'too-many',
      `${path(fields.oneTimeEc)}: at most ${MAX_ONE_TIME_KEYS_PER_REQUEST} keys per request`,
    );
  }
  if (keys.oneTimeKyber.length > MAX_ONE_TIME_KEYS_PER_REQUEST) {
    throw refuse(
      'too-many',
      `${path(fields.oneTimeKyber)}: at most ${MAX_ONE_TIME_KEYS_PER_REQUEST} keys per request`,
    );
  }
  if (keys.signedPreKey) checkSignedEcKey(identity, keys.signedPreKey, path(fields.signedPreKey));
  if (keys.kyberLastResort) checkKyberKey(identity, keys.kyberLastResort, path(fields.kyberLastResort));
  keys.oneTimeEc.forEach((key, index) => checkEcKey(key, `${path(fields.oneTimeEc)}[${index}]`));
  keys.oneTimeKyber.forEach((key, index) =>
    checkKyberKey(identity, key, `${path(fields.oneTimeKyber)}[${index}]`),
  );
  checkUniqueIds(keys.oneTimeEc, path(fields.oneTimeEc));
  checkUniqueIds(keys.oneTimeKyber, path(fields.oneTimeKyber));
  return {
    ...(keys.signedPreKey ? { signedPreKey: keys.signedPreKey } : {}),
    ...(keys.kyberLastResort ? { kyberLastResort: keys.kyberLastResort } : {}),
    oneTimeEc: keys.oneTimeEc,
    oneTimeKyber: keys.oneTimeKyber,
  };
}
