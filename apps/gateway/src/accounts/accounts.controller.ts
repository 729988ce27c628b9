import { Controller } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import {
  AccountServiceControllerMethods,
  type AccountServiceController,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RegisterRequest,
  type RegisterResponse,
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream, grpcError } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';

/** The public AccountService: registration is open, everything else needs a device credential. */
@Controller()
@AccountServiceControllerMethods()
export class AccountsController implements AccountServiceController {
  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
  ) {}

  register(request: RegisterRequest): Promise<RegisterResponse> {
    return callUpstream('prekey-directory', this.upstream.directory.register(request));
  }

  async lookupUsername(request: LookupUsernameRequest, metadata?: Metadata): Promise<LookupUsernameResponse> {
    await this.auth.authenticate(metadata);
    return callUpstream('prekey-directory', this.upstream.directory.lookupUsername(request));
  }

  recoverAccount(): never {
    throw grpcError(status.UNIMPLEMENTED, 'account recovery arrives with encrypted backups');
  }

  setRecoveryCredential(): never {
    throw grpcError(status.UNIMPLEMENTED, 'account recovery arrives with encrypted backups');
  }
}
