import { Controller } from '@nestjs/common';
import { status, type Metadata, type ServerUnaryCall } from '@grpc/grpc-js';
import {
  VaultServiceControllerMethods,
  type DeleteVaultResponse,
  type FinishVaultLoginRequest,
  type FinishVaultLoginResponse,
  type FinishVaultRegistrationRequest,
  type FinishVaultRegistrationResponse,
  type StartVaultLoginRequest,
  type StartVaultLoginResponse,
  type StartVaultRegistrationRequest,
  type StartVaultRegistrationResponse,
  type VaultServiceController,
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream, grpcError, grpcStatusOf } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';

const VAULT = 'key-vault';

/**
 * The client's IP address from grpc-js's peer string ("1.2.3.4:5678",
 * "[::1]:5678"). Behind a load balancer this is the balancer's unless it
 * preserves source addresses (e.g. externalTrafficPolicy: Local).
 */
export function peerAddress(peer: string): string {
  const bracketed = /^\[([^\]]+)\]:\d+$/.exec(peer);
  if (bracketed) return bracketed[1] ?? '';
  const withoutScheme = peer.replace(/^ipv[46]:/, '');
  const colon = withoutScheme.lastIndexOf(':');
  return colon > 0 && withoutScheme.indexOf(':') === colon ? withoutScheme.slice(0, colon) : withoutScheme;
}

/**
 * The public VaultService. Registration and deletion act on the caller's own
 * account. Login is for someone who has lost their device, so it is not
 * authenticated: the username is resolved here, and an unknown username gets
 * the same answer as an account without a vault.
 */
@Controller()
@VaultServiceControllerMethods()
export class VaultController implements VaultServiceController {
  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  async startVaultRegistration(
    request: StartVaultRegistrationRequest,
    metadata?: Metadata,
  ): Promise<StartVaultRegistrationResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    return callUpstream(VAULT, this.upstream.keyVault.startRegistration({ ...request, accountId }));
  }

  async finishVaultRegistration(
    request: FinishVaultRegistrationRequest,
    metadata?: Metadata,
  ): Promise<FinishVaultRegistrationResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    return callUpstream(VAULT, this.upstream.keyVault.finishRegistration({ ...request, accountId }));
  }

  async startVaultLogin(
    request: StartVaultLoginRequest,
    _metadata?: Metadata,
    call?: ServerUnaryCall<StartVaultLoginRequest, StartVaultLoginResponse>,
  ): Promise<StartVaultLoginResponse> {
    try {
      const account = await callUpstream(
        'prekey-directory',
        this.upstream.directory.lookupUsername({ username: request.username }),
      );
      return await callUpstream(
        VAULT,
        this.upstream.keyVault.startLogin({
          accountId: account.accountId,
          credentialRequest: request.credentialRequest,
          source: peerAddress(call?.getPeer() ?? ''),
        }),
      );
    } catch (error) {
      // The same answer for an unknown username and an account without a vault.
      throw grpcStatusOf(error) === status.NOT_FOUND
        ? grpcError(status.NOT_FOUND, 'username: has no password vault')
        : error;
    }
  }

  finishVaultLogin(request: FinishVaultLoginRequest): Promise<FinishVaultLoginResponse> {
    return callUpstream(VAULT, this.upstream.keyVault.finishLogin(request));
  }

  async deleteVault(_request: unknown, metadata?: Metadata): Promise<DeleteVaultResponse> {
    const { accountId } = await this.auth.authenticate(metadata);
    return callUpstream(VAULT, this.upstream.keyVault.deleteVault({ accountId }));
  }
}
