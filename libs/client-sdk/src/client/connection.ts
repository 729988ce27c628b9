import { credentials, Metadata } from '@grpc/grpc-js';
import {
  AccountServiceClient,
  BackupServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  VaultServiceClient,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { explain } from '../errors';
import { unary, type UnaryMethod } from '../grpc';
import type { AccountFile } from '../profile';

/** A registered device's line to its gateway: a client per service, and the credential every call carries. */
export class GatewayConnection {
  readonly accounts: AccountServiceClient;
  readonly keys: KeysServiceClient;
  readonly messaging: MessagingServiceClient;
  readonly backups: BackupServiceClient;
  readonly vault: VaultServiceClient;
  readonly auth = new Metadata();

  /** `server` is a checked `host:port` (parseServerAddress). */
  constructor(
    readonly server: string,
    device: Pick<AccountFile, 'accountId' | 'deviceId' | 'deviceSecret'>,
  ) {
    this.accounts = new AccountServiceClient(server, credentials.createInsecure());
    this.keys = new KeysServiceClient(server, credentials.createInsecure());
    this.messaging = new MessagingServiceClient(server, credentials.createInsecure());
    this.backups = new BackupServiceClient(server, credentials.createInsecure());
    this.vault = new VaultServiceClient(server, credentials.createInsecure());
    this.useSecret(device);
  }

  /** Makes every later call carry this credential, e.g. after the device's secret was rotated. */
  useSecret(device: Pick<AccountFile, 'accountId' | 'deviceId' | 'deviceSecret'>): void {
    this.auth.set('authorization', `${device.accountId}.${device.deviceId}:${device.deviceSecret}`);
  }

  /** A failure of a call to this server, in words a person can read. */
  explain(error: unknown): Error {
    return explain(error, this.server);
  }

  /** Calls a unary method as this device; a failure comes back explained. */
  async call<Request, Response>(method: UnaryMethod<Request, Response>, request: Request): Promise<Response> {
    try {
      return await unary(method, request, { metadata: this.auth });
    } catch (error) {
      throw this.explain(error);
    }
  }

  close(): void {
    for (const client of [this.accounts, this.keys, this.messaging, this.backups, this.vault]) client.close();
  }
}
