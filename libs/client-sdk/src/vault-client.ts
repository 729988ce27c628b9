import { randomBytes } from 'node:crypto';
import type { Metadata, ServiceError } from '@grpc/grpc-js';
import * as opaque from '@serenity-kit/opaque';
import type { VaultServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { deriveVaultRecoveryProof, openSealedRecoveryKey, sealRecoveryKey, type RecoveryKey } from './backup';
import { SottoError } from './errors';
import { unary } from './grpc';

/** @serenity-kit/opaque speaks base64url strings; the API carries raw bytes. */
const toBytes = (text: string): Buffer => Buffer.from(text, 'base64url');
const toText = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** The KE3 message's size; a failed login still sends one, so the vault counts the failure at once. */
const KE3_BYTES = 64;

/**
 * Protects the recovery key with a password: an OPAQUE registration with the
 * vault, which then keeps the recovery key sealed under the export key that
 * only this password yields. The recovery key itself proves the right to
 * replace an existing vault, so setting a new password needs no old one.
 */
export async function protectRecoveryKey(options: {
  client: VaultServiceClient;
  metadata: Metadata;
  recoveryKey: RecoveryKey;
  password: string;
}): Promise<{ replaced: boolean }> {
  const { client, metadata, recoveryKey, password } = options;
  await opaque.ready;
  const start = opaque.client.startRegistration({ password });
  const started = await unary(
    client.startVaultRegistration.bind(client),
    { registrationRequest: toBytes(start.registrationRequest) },
    { metadata },
  );
  const finish = opaque.client.finishRegistration({
    clientRegistrationState: start.clientRegistrationState,
    registrationResponse: toText(started.registrationResponse),
    password,
  });
  const proof = Buffer.from(deriveVaultRecoveryProof(recoveryKey));
  return unary(
    client.finishVaultRegistration.bind(client),
    {
      registrationRecord: toBytes(finish.registrationRecord),
      sealedRecoveryKey: Buffer.from(sealRecoveryKey(recoveryKey, finish.exportKey)),
      registrationId: started.registrationId,
      recoveryProof: proof,
      changeToken: '',
      currentRecoveryProof: proof,
    },
    { metadata },
  );
}

/**
 * Gets the recovery key back with the password: an OPAQUE login, which costs
 * one of the vault's ten tries whether it succeeds or not.
 */
export async function recoverWithPassword(options: {
  client: VaultServiceClient;
  username: string;
  password: string;
}): Promise<RecoveryKey> {
  const { client, username, password } = options;
  await opaque.ready;
  const start = opaque.client.startLogin({ password });
  const started = await unary(client.startVaultLogin.bind(client), {
    username,
    credentialRequest: toBytes(start.startLoginRequest),
  });
  const finish = opaque.client.finishLogin({
    clientLoginState: start.clientLoginState,
    loginResponse: toText(started.credentialResponse),
    password,
  });
  // A wrong password is noticed here, on the client; the vault hears of it through a KE3 that cannot verify.
  const finalization = finish ? toBytes(finish.finishLoginRequest) : randomBytes(KE3_BYTES);
  let sealed: Uint8Array;
  try {
    ({ sealedRecoveryKey: sealed } = await unary(client.finishVaultLogin.bind(client), {
      loginId: started.loginId,
      credentialFinalization: finalization,
    }));
  } catch (error) {
    const { code, details } = error as ServiceError;
    throw new SottoError(details || (finish ? String(error) : 'wrong password'), code);
  }
  if (!finish) throw new SottoError('wrong password');
  return openSealedRecoveryKey(sealed, finish.exportKey);
}
