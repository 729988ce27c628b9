import { Controller } from '@nestjs/common';
import type { PreKeyBundle } from '@sotto/contracts/generated/sotto/common/v1/keys';
import {
  DirectoryServiceService,
  type AuthenticateRequest,
  type AuthenticateResponse,
  type GetPreKeyBundleRequest,
  type GetPreKeyBundleResponse,
  type GetPreKeyCountRequest,
  type GetPreKeyCountResponse,
  type ListDevicesRequest,
  type ListDevicesResponse,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RecoverAccountRequest,
  type RecoverAccountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type SetRecoveryCredentialRequest,
  type SetRecoveryCredentialResponse,
  type UploadPreKeysRequest,
  type UploadPreKeysResponse,
} from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { parseAccountId, parseDeviceId } from './accounts/account-id';
import { AccountsService } from './accounts/accounts.service';
import { PreKeysService } from './prekeys/prekeys.service';

/** gRPC in, gRPC out: the DirectoryService contract mapped onto the accounts and prekeys features. */
@Controller()
@GrpcService(DirectoryServiceService)
export class DirectoryController implements GrpcController<typeof DirectoryServiceService> {
  constructor(
    private readonly accounts: AccountsService,
    private readonly prekeys: PreKeysService,
  ) {}

  async register(request: RegisterRequest): Promise<RegisterResponse> {
    return this.accounts.register({
      username: request.username,
      identityKey: request.identityKey,
      device: request.device ?? undefined,
    });
  }

  async authenticate(request: AuthenticateRequest): Promise<AuthenticateResponse> {
    const accountId = parseAccountId(request.accountId, 'account_id');
    const deviceId = parseDeviceId(request.deviceId, 'device_id');
    return { authenticated: await this.accounts.authenticate(accountId, deviceId, request.deviceSecret) };
  }

  lookupUsername(request: LookupUsernameRequest): Promise<LookupUsernameResponse> {
    return this.accounts.lookup(request.username);
  }

  async listDevices(request: ListDevicesRequest): Promise<ListDevicesResponse> {
    return { devices: await this.accounts.devices(parseAccountId(request.accountId, 'account_id')) };
  }

  async getPreKeyBundle(request: GetPreKeyBundleRequest): Promise<GetPreKeyBundleResponse> {
    const requester = parseAccountId(request.requesterAccountId, 'requester_account_id');
    const target = parseAccountId(request.targetAccountId, 'target_account_id');
    const deviceId =
      request.targetDeviceId === 0 ? undefined : parseDeviceId(request.targetDeviceId, 'target_device_id');
    const { identityKey, bundles } = await this.prekeys.bundles(requester, target, deviceId);
    return {
      bundles: bundles.map((bundle): PreKeyBundle => ({
        accountId: target,
        deviceId: bundle.deviceId,
        registrationId: bundle.registrationId,
        identityKey,
        signedPreKey: bundle.signedPreKey,
        oneTimePreKey: bundle.oneTimePreKey,
        kyberPreKey: bundle.kyberPreKey,
        kyberLastResort: bundle.kyberLastResort,
      })),
    };
  }

  async getPreKeyCount(request: GetPreKeyCountRequest): Promise<GetPreKeyCountResponse> {
    const counts = await this.prekeys.count(
      parseAccountId(request.accountId, 'account_id'),
      parseDeviceId(request.deviceId, 'device_id'),
    );
    return { ecCount: counts.ec, kyberCount: counts.kyber };
  }

  async uploadPreKeys(request: UploadPreKeysRequest): Promise<UploadPreKeysResponse> {
    const counts = await this.prekeys.refill(
      parseAccountId(request.accountId, 'account_id'),
      parseDeviceId(request.deviceId, 'device_id'),
      {
        signedPreKey: request.signedPreKey ?? undefined,
        kyberLastResortPreKey: request.kyberLastResortPreKey ?? undefined,
        oneTimePreKeys: request.oneTimePreKeys,
        oneTimeKyberPreKeys: request.oneTimeKyberPreKeys,
      },
    );
    return { ecCount: counts.ec, kyberCount: counts.kyber };
  }

  async setRecoveryCredential(request: SetRecoveryCredentialRequest): Promise<SetRecoveryCredentialResponse> {
    await this.accounts.setRecoveryCredential(
      parseAccountId(request.accountId, 'account_id'),
      request.recoveryCredential,
    );
    return {};
  }

  recoverAccount(request: RecoverAccountRequest): Promise<RecoverAccountResponse> {
    return this.accounts.recover({
      username: request.username,
      recoveryCredential: request.recoveryCredential,
      identityKey: request.identityKey,
      device: request.device ?? undefined,
    });
  }
}
