import { Metadata, type ChannelCredentials } from '@grpc/grpc-js';
import {
  AccountServiceClient,
  BackupServiceClient,
  DeviceServiceClient,
  KeysServiceClient,
  MessagingServiceClient,
  VaultServiceClient,
  type SendRequest,
  type SendResponse,
  type SendSealedRequest,
  type SendSealedResponse,
  type SendMultiRecipientRequest,
  type SendMultiRecipientResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { explain } from '../errors';
import { authorizationMetadata } from './authorization';
import { unary, type UnaryMethod } from '../grpc';
import type { AccountFile } from '../profile';
import type { StreamSender } from '../stream-sender';

/** A registered device's line to its gateway: a client per service, and the credential every call carries. */
export class GatewayConnection {
  readonly accounts: AccountServiceClient;
  readonly keys: KeysServiceClient;
  readonly messaging: MessagingServiceClient;
  readonly backups: BackupServiceClient;
  readonly vault: VaultServiceClient;
  readonly devices: DeviceServiceClient;
  /**
   * SendSealed goes on a connection of its own, never carrying a credential:
   * on the credentialed one the server could tie each sealed send to the
   * device whose calls share it.
   */
  private readonly sealed: MessagingServiceClient;
  readonly auth = new Metadata();
  /** The device's open Connect stream, while it has one. */
  private stream?: StreamSender;

  /**
   * `server` is a checked `host:port` (parseServerAddress); `tls` verifies its
   * certificate (gatewayCredentials). The clients share one connection.
   */
  constructor(
    readonly server: string,
    device: Pick<AccountFile, 'accountId' | 'deviceId' | 'deviceSecret'>,
    tls: ChannelCredentials,
  ) {
    this.accounts = new AccountServiceClient(server, tls);
    this.keys = new KeysServiceClient(server, tls);
    this.messaging = new MessagingServiceClient(server, tls);
    this.backups = new BackupServiceClient(server, tls);
    this.vault = new VaultServiceClient(server, tls);
    this.devices = new DeviceServiceClient(server, tls);
    this.sealed = new MessagingServiceClient(server, tls, { 'grpc.use_local_subchannel_pool': 1 });
    this.useSecret(device);
  }

  /** Makes every later call carry this credential, e.g. after the device's secret was rotated. */
  useSecret(device: Pick<AccountFile, 'accountId' | 'deviceId' | 'deviceSecret'>): void {
    authorizationMetadata(device, this.auth);
  }

  /** Sends go on this Connect stream from now on, until the function returned is called. */
  sendOn(stream: StreamSender): () => void {
    this.stream = stream;
    return () => {
      if (this.stream === stream) this.stream = undefined;
    };
  }

  /**
   * Sends as this device: on its Connect stream while one is open, else by
   * the unary Send. Either way a failure is the gRPC error (code, details,
   * trailers) as it came, for the caller to act on (mismatched devices).
   */
  send(request: SendRequest): Promise<SendResponse> {
    if (this.stream?.open === true) return this.stream.send(request);
    return unary(this.messaging.send.bind(this.messaging), request, { metadata: this.auth });
  }

  /**
   * Sends sealed envelopes without a credential, authorised by the
   * destination's unidentified-access key in the request. A failure is the
   * gRPC error as it came (mismatched devices; UNAUTHENTICATED for a refused key).
   */
  sendSealed(request: SendSealedRequest): Promise<SendSealedResponse> {
    return unary(this.sealed.sendSealed.bind(this.sealed), request);
  }

  /**
   * Sends one multi-recipient sealed message, without a credential (on the
   * sealed connection), authorised by the recipients' combined access keys.
   * A failure is the gRPC error as it came (the per-recipient mismatch trailer).
   */
  sendMultiRecipient(request: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    return unary(this.sealed.sendMultiRecipient.bind(this.sealed), request);
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
    for (const client of [
      this.accounts,
      this.keys,
      this.messaging,
      this.sealed,
      this.backups,
      this.vault,
      this.devices,
    ])
      client.close();
  }
}
