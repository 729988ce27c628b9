import { createCipheriv, createDecipheriv, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { Metadata, status, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';
import * as opaque from '@serenity-kit/opaque';
import { callerCredentials } from '@sotto/testing';
import {
  KeyVaultServiceClient,
  type DeleteVaultRequest,
  type FinishLoginRequest,
  type FinishLoginResponse,
  type FinishRegistrationRequest,
  type GetVaultStatusRequest,
  type ResetAttemptsRequest,
  type StartLoginRequest,
  type StartLoginResponse,
  type StartRegistrationRequest,
} from '@sotto/contracts/generated/sotto/vault/v1/vault';
import type { VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';

// What the specs drive the vault with: OPAQUE's client side over real gRPC,
// doing what the client SDK will do. Not imported by the service.

/** The full-signature overload of every generated unary method. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

export interface Refusal {
  readonly code: status;
  readonly details: string;
  readonly metadata: Record<string, string>;
}

/** The status, message and metadata of a gRPC error. */
export function refusalOf(error: unknown): Refusal {
  const { code, details, metadata } = error as ServiceError;
  const flat = Object.fromEntries(
    Object.entries(metadata?.getMap() ?? {}).map(([key, value]) => [key, String(value)]),
  );
  return { code, details, metadata: flat };
}

/** How a call was refused; fails if it succeeded. */
export async function refusal(promise: Promise<unknown>): Promise<Refusal> {
  try {
    await promise;
  } catch (error) {
    return refusalOf(error);
  }
  throw new Error('expected the call to be refused');
}

export const newAccountId = (): string => randomUUID();

/** A documentation-range address of its own, so rate limits of one test never touch another's. */
export const newSource = (): string => `198.51.${randomBytes(1)[0]}.${randomBytes(1)[0]}`;

/** What the client derives from the recovery key to prove it to a password change. */
export const recoveryProofOf = (recoveryKey: string): Buffer =>
  Buffer.from(hkdfSync('sha256', recoveryKey, Buffer.alloc(0), 'sotto vault recovery proof v1', 32));

function keyFrom(exportKey: string): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.from(exportKey, 'base64url'),
      Buffer.alloc(0),
      'sotto vault recovery key v1',
      32,
    ),
  );
}

/** The recovery key encrypted under the OPAQUE export key, as the client stores it in the vault. */
export function sealRecoveryKey(recoveryKey: string, exportKey: string): Buffer {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', keyFrom(exportKey), iv);
  const body = Buffer.concat([cipher.update(recoveryKey, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]);
}

export function openRecoveryKey(sealed: Uint8Array, exportKey: string): string {
  const blob = Buffer.from(sealed);
  const decipher = createDecipheriv('aes-256-gcm', keyFrom(exportKey), blob.subarray(0, 12));
  decipher.setAuthTag(blob.subarray(blob.length - 16));
  return Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]).toString(
    'utf8',
  );
}

export interface Registration {
  readonly recoveryKey: string;
  readonly sealedRecoveryKey: Buffer;
  readonly exportKey: string;
  readonly replaced: boolean;
}

/** What a login gave the client: the vault's answer, and OPAQUE's outputs when the password was right. */
export type LoginResult = FinishLoginResponse & { exportKey?: string; serverPublicKey?: string };

export interface StartedLogin extends StartLoginResponse {
  readonly clientLoginState: string;
}

export class VaultClient {
  private readonly raw: KeyVaultServiceClient;

  /** Each RPC as it is, for requests no well-behaved client would send. */
  readonly rpc = {
    startRegistration: (request: StartRegistrationRequest) =>
      this.call(this.raw.startRegistration.bind(this.raw), request),
    finishRegistration: (request: FinishRegistrationRequest) =>
      this.call(this.raw.finishRegistration.bind(this.raw), request),
    startLogin: (request: StartLoginRequest) => this.call(this.raw.startLogin.bind(this.raw), request),
    finishLogin: (request: FinishLoginRequest) => this.call(this.raw.finishLogin.bind(this.raw), request),
    getVaultStatus: (request: GetVaultStatusRequest) =>
      this.call(this.raw.getVaultStatus.bind(this.raw), request),
    deleteVault: (request: DeleteVaultRequest) => this.call(this.raw.deleteVault.bind(this.raw), request),
    resetAttempts: (request: ResetAttemptsRequest) =>
      this.call(this.raw.resetAttempts.bind(this.raw), request),
  };

  /** `ownConnection`: a channel of its own rather than one shared with other clients of this address. */
  constructor(address: string, options: { ownConnection?: boolean } = {}) {
    this.raw = new KeyVaultServiceClient(
      address,
      // Mutual TLS as the gateway, the vault's one caller.
      callerCredentials('gateway'),
      options.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {},
    );
  }

  private call<Req, Res>(method: UnaryMethod<Req, Res>, request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      method(request, new Metadata(), {}, (error, response) => (error ? reject(error) : resolve(response)));
    });
  }

  /** A full OPAQUE registration; `proof` fields go to FinishRegistration as they are. */
  async register(
    accountId: string,
    password: string,
    options: {
      recoveryKey?: string;
      proof?: Partial<Pick<FinishRegistrationRequest, 'changeToken' | 'currentRecoveryProof'>>;
    } = {},
  ): Promise<Registration> {
    await opaque.ready;
    const recoveryKey = options.recoveryKey ?? randomBytes(32).toString('hex');
    const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
    const started = await this.rpc.startRegistration({
      accountId,
      registrationRequest: Buffer.from(registrationRequest, 'base64url'),
    });
    const { registrationRecord, exportKey } = opaque.client.finishRegistration({
      password,
      clientRegistrationState,
      registrationResponse: Buffer.from(started.registrationResponse).toString('base64url'),
    });
    const sealedRecoveryKey = sealRecoveryKey(recoveryKey, exportKey);
    const { replaced } = await this.rpc.finishRegistration({
      accountId,
      registrationId: started.registrationId,
      registrationRecord: Buffer.from(registrationRecord, 'base64url'),
      sealedRecoveryKey,
      recoveryProof: recoveryProofOf(recoveryKey),
      changeToken: options.proof?.changeToken ?? '',
      currentRecoveryProof: options.proof?.currentRecoveryProof ?? Buffer.alloc(0),
    });
    return { recoveryKey, sealedRecoveryKey, exportKey, replaced };
  }

  async startLogin(accountId: string, password: string, source: string): Promise<StartedLogin> {
    await opaque.ready;
    const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
    const response = await this.rpc.startLogin({
      accountId,
      credentialRequest: Buffer.from(startLoginRequest, 'base64url'),
      source,
    });
    return { ...response, clientLoginState };
  }

  /**
   * Finishes a started login. With the wrong password the client's OPAQUE
   * finish fails, and it sends any 64 bytes so the vault counts the failure now.
   */
  async finishLogin(started: StartedLogin, password: string): Promise<LoginResult> {
    const finished = opaque.client.finishLogin({
      password,
      clientLoginState: started.clientLoginState,
      loginResponse: Buffer.from(started.credentialResponse).toString('base64url'),
    });
    const response = await this.rpc.finishLogin({
      loginId: started.loginId,
      credentialFinalization: finished
        ? Buffer.from(finished.finishLoginRequest, 'base64url')
        : randomBytes(64),
    });
    return finished
      ? { ...response, exportKey: finished.exportKey, serverPublicKey: finished.serverStaticPublicKey }
      : response;
  }

  async login(accountId: string, password: string, source: string): Promise<LoginResult> {
    return this.finishLogin(await this.startLogin(accountId, password, source), password);
  }

  async status(accountId: string): Promise<VaultStatus> {
    const { vault } = await this.rpc.getVaultStatus({ accountId });
    if (!vault) throw new Error('GetVaultStatus answered without a status');
    return vault;
  }

  async resetAttempts(accountId: string): Promise<VaultStatus> {
    const { vault } = await this.rpc.resetAttempts({ accountId });
    if (!vault) throw new Error('ResetAttempts answered without a status');
    return vault;
  }

  close(): void {
    this.raw.close();
  }
}
