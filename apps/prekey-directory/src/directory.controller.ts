import { Controller } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import type { PreKeyBundle } from '@sotto/contracts/generated/sotto/common/v1/keys';
import {
  DirectoryServiceService,
  type ApproveLinkRequest,
  type ApproveLinkResponse,
  type AuthenticateRequest,
  type CompleteLinkRequest,
  type CompleteLinkResponse,
  type CreateLinkResponse,
  type GetDeviceListRequest,
  type GetDeviceListResponse,
  type GetLinkRequest,
  type GetLinkResponse,
  type ListDeviceDetailsRequest,
  type ListDeviceDetailsResponse,
  type RecordLastSeenRequest,
  type RecordLastSeenResponse,
  type RemoveDeviceRequest,
  type RemoveDeviceResponse,
  type SetDeviceListRequest,
  type SetDeviceListResponse,
  type AuthenticateResponse,
  type GetIdentityKeyRequest,
  type GetIdentityKeyResponse,
  type GetUnidentifiedAccessRequest,
  type GetUnidentifiedAccessResponse,
  type GetUnidentifiedAccessBatchRequest,
  type GetUnidentifiedAccessBatchResponse,
  type GetPreKeyBundleRequest,
  type GetPreKeyBundleResponse,
  type GetPreKeyCountRequest,
  type GetPreKeyCountResponse,
  type ListDevicesBatchRequest,
  type ListDevicesBatchResponse,
  type ListDevicesRequest,
  type ListDevicesResponse,
  type LookupAccountRequest,
  type LookupAccountResponse,
  type LookupUsernameRequest,
  type LookupUsernameResponse,
  type RecoverAccountRequest,
  type RecoverAccountResponse,
  type RegisterRequest,
  type RegisterResponse,
  type RotateDeviceSecretRequest,
  type RotateDeviceSecretResponse,
  type SetRecoveryCredentialRequest,
  type SetRecoveryCredentialResponse,
  type SetUnidentifiedAccessRequest,
  type SetUnidentifiedAccessResponse,
  type UploadPreKeysRequest,
  type UploadPreKeysResponse,
} from '@sotto/contracts/generated/sotto/directory/v1/directory';
import {
  GrpcService,
  grpcError,
  requireAccountId,
  requireDeviceId,
  type GrpcController,
} from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { AccountsService } from './accounts/accounts.service';
import { DevicesService } from './devices/devices.service';
import { PreKeysService } from './prekeys/prekeys.service';

/** The most accounts one ListDevicesBatch call may ask about. */
export const MAX_BATCH_ACCOUNTS = 1000;

/** A batch call's account ids, checked: at most MAX_BATCH_ACCOUNTS, each an account id. */
function requireBatch(ids: readonly string[]): AccountId[] {
  if (ids.length > MAX_BATCH_ACCOUNTS) {
    throw grpcError(
      status.INVALID_ARGUMENT,
      `account_ids: ${ids.length} accounts is over the limit of ${MAX_BATCH_ACCOUNTS} a call`,
    );
  }
  return ids.map((id, index) => requireAccountId(id, `account_ids[${index}]`));
}

/** gRPC in, gRPC out: the DirectoryService contract mapped onto the accounts and prekeys features. */
@Controller()
@GrpcService(DirectoryServiceService)
export class DirectoryController implements GrpcController<typeof DirectoryServiceService> {
  constructor(
    private readonly accounts: AccountsService,
    private readonly prekeys: PreKeysService,
    private readonly devices: DevicesService,
  ) {}

  async register(request: RegisterRequest): Promise<RegisterResponse> {
    return this.accounts.register(request);
  }

  async authenticate(request: AuthenticateRequest): Promise<AuthenticateResponse> {
    const accountId = requireAccountId(request.accountId, 'account_id');
    const deviceId = requireDeviceId(request.deviceId, 'device_id');
    return { authenticated: await this.accounts.authenticate(accountId, deviceId, request.deviceSecret) };
  }

  lookupUsername(request: LookupUsernameRequest): Promise<LookupUsernameResponse> {
    return this.accounts.lookup(request.username);
  }

  async listDevices(request: ListDevicesRequest): Promise<ListDevicesResponse> {
    return { devices: await this.accounts.devices(requireAccountId(request.accountId, 'account_id')) };
  }

  async listDevicesBatch(request: ListDevicesBatchRequest): Promise<ListDevicesBatchResponse> {
    return { accounts: await this.accounts.devicesOfAccounts(requireBatch(request.accountIds)) };
  }

  async getPreKeyBundle(request: GetPreKeyBundleRequest): Promise<GetPreKeyBundleResponse> {
    const requester = requireAccountId(request.requesterAccountId, 'requester_account_id');
    const target = requireAccountId(request.targetAccountId, 'target_account_id');
    const deviceId =
      request.targetDeviceId === 0 ? undefined : requireDeviceId(request.targetDeviceId, 'target_device_id');
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
      requireAccountId(request.accountId, 'account_id'),
      requireDeviceId(request.deviceId, 'device_id'),
    );
    return { ecCount: counts.ec, kyberCount: counts.kyber };
  }

  async uploadPreKeys(request: UploadPreKeysRequest): Promise<UploadPreKeysResponse> {
    const counts = await this.prekeys.refill(
      requireAccountId(request.accountId, 'account_id'),
      requireDeviceId(request.deviceId, 'device_id'),
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
      requireAccountId(request.accountId, 'account_id'),
      request.recoveryCredential,
      request.currentRecoveryCredential,
    );
    return {};
  }

  recoverAccount(request: RecoverAccountRequest): Promise<RecoverAccountResponse> {
    return this.accounts.recover(request);
  }

  async rotateDeviceSecret(request: RotateDeviceSecretRequest): Promise<RotateDeviceSecretResponse> {
    await this.accounts.rotateSecret(
      requireAccountId(request.accountId, 'account_id'),
      requireDeviceId(request.deviceId, 'device_id'),
      request.currentDeviceSecret,
      request.newDeviceSecret,
    );
    return {};
  }

  lookupAccount(request: LookupAccountRequest): Promise<LookupAccountResponse> {
    return this.accounts.lookupAccount(requireAccountId(request.accountId, 'account_id'));
  }

  async getIdentityKey(request: GetIdentityKeyRequest): Promise<GetIdentityKeyResponse> {
    return {
      identityKey: await this.accounts.identityKey(requireAccountId(request.accountId, 'account_id')),
    };
  }

  async setUnidentifiedAccess(request: SetUnidentifiedAccessRequest): Promise<SetUnidentifiedAccessResponse> {
    await this.accounts.setUnidentifiedAccess(
      requireAccountId(request.accountId, 'account_id'),
      request.unidentifiedAccessKey,
      request.unrestrictedUnidentifiedAccess,
    );
    return {};
  }

  async getUnidentifiedAccess(request: GetUnidentifiedAccessRequest): Promise<GetUnidentifiedAccessResponse> {
    const access = await this.accounts.unidentifiedAccess(requireAccountId(request.accountId, 'account_id'));
    return {
      unidentifiedAccessKey: access.key ?? new Uint8Array(),
      unrestrictedUnidentifiedAccess: access.unrestricted,
    };
  }

  async getUnidentifiedAccessBatch(
    request: GetUnidentifiedAccessBatchRequest,
  ): Promise<GetUnidentifiedAccessBatchResponse> {
    const accountIds = requireBatch(request.accountIds);
    const access = await this.accounts.unidentifiedAccessOfAccounts(accountIds);
    return {
      accounts: accountIds.map((accountId, index) => ({
        accountId,
        found: access[index] !== undefined,
        unidentifiedAccessKey: access[index]?.key ?? new Uint8Array(),
        unrestrictedUnidentifiedAccess: access[index]?.unrestricted ?? false,
      })),
    };
  }

  async createLink(): Promise<CreateLinkResponse> {
    const link = await this.devices.createLink();
    return { token: link.token, expiresAtMs: String(link.expiresAt.getTime()) };
  }

  async getLink(request: GetLinkRequest): Promise<GetLinkResponse> {
    const link = await this.devices.link(request.token);
    return {
      approved: link.approval !== undefined,
      accountId: link.approval?.accountId ?? '',
      deviceId: link.approval?.deviceId ?? 0,
      provisioning: link.approval?.provisioning ?? new Uint8Array(),
      expiresAtMs: String(link.expiresAt.getTime()),
    };
  }

  async approveLink(request: ApproveLinkRequest): Promise<ApproveLinkResponse> {
    const deviceId = await this.devices.approveLink(
      requireAccountId(request.accountId, 'account_id'),
      request.token,
      request.provisioning,
    );
    return { deviceId };
  }

  completeLink(request: CompleteLinkRequest): Promise<CompleteLinkResponse> {
    return this.devices.completeLink({
      token: request.token,
      device: request.device ?? undefined,
      deviceList: request.deviceList ?? undefined,
      name: request.name,
    });
  }

  async listDeviceDetails(request: ListDeviceDetailsRequest): Promise<ListDeviceDetailsResponse> {
    const devices = await this.devices.details(requireAccountId(request.accountId, 'account_id'));
    return {
      devices: devices.map((device) => ({
        deviceId: device.deviceId,
        name: device.name,
        linkedAtMs: String(device.linkedAt.getTime()),
        lastSeenMs: String(device.lastSeen?.getTime() ?? 0),
      })),
    };
  }

  async removeDevice(request: RemoveDeviceRequest): Promise<RemoveDeviceResponse> {
    await this.devices.removeDevice(
      requireAccountId(request.accountId, 'account_id'),
      requireDeviceId(request.deviceId, 'device_id'),
      request.deviceList ?? undefined,
    );
    return {};
  }

  async setDeviceList(request: SetDeviceListRequest): Promise<SetDeviceListResponse> {
    await this.devices.setDeviceList(
      requireAccountId(request.accountId, 'account_id'),
      request.deviceList ?? undefined,
    );
    return {};
  }

  async getDeviceList(request: GetDeviceListRequest): Promise<GetDeviceListResponse> {
    return { deviceList: await this.devices.deviceList(requireAccountId(request.accountId, 'account_id')) };
  }

  async recordLastSeen(request: RecordLastSeenRequest): Promise<RecordLastSeenResponse> {
    await this.devices.recordLastSeen(
      requireAccountId(request.accountId, 'account_id'),
      requireDeviceId(request.deviceId, 'device_id'),
    );
    return {};
  }
}
