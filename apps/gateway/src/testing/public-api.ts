import { randomUUID } from 'node:crypto';
import { Metadata, type ClientDuplexStream, type ServiceError } from '@grpc/grpc-js';
import {
  authorizationMetadata,
  generateDeviceKeys,
  opaqueSendRequest,
  publicDeviceKeys,
  unary,
} from '@sotto/client-sdk';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  AccountServiceClient,
  MessagingServiceClient,
  type ConnectRequest,
  type ConnectResponse,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { gatewayCredentials } from '@sotto/testing';

/** A registered device as a test drives it: its account, registration id and credentials. */
export interface Device {
  accountId: string;
  registrationId: number;
  auth: Metadata;
}

/**
 * A Connect stream whose messages can be awaited one by one. It reads from
 * the start unless `reading` is false: then it reads nothing until `read()`,
 * as a device that stopped reading.
 */
export class Inbox {
  private readonly queue: ConnectResponse[] = [];
  private readonly waiting: ((message: ConnectResponse | 'end') => void)[] = [];
  ended = false;
  error?: ServiceError;

  constructor(
    readonly call: ClientDuplexStream<ConnectRequest, ConnectResponse>,
    { reading = true }: { reading?: boolean } = {},
  ) {
    call.on('error', (error: ServiceError) => (this.error = error));
    call.on('status', () => {
      this.ended = true;
      this.waiting.splice(0).forEach((resolve) => resolve('end'));
    });
    if (reading) this.read();
  }

  /** Starts reading. */
  read(): this {
    this.call.on('data', (message: ConnectResponse) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.queue.push(message);
    });
    return this;
  }

  /** Messages that came and were not taken yet. */
  get buffered(): number {
    return this.queue.length;
  }

  next(): Promise<ConnectResponse | 'end'> {
    const ready = this.queue.shift();
    if (ready) return Promise.resolve(ready);
    if (this.ended) return Promise.resolve('end');
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  ack(guids: string[]): void {
    this.call.write({ ack: { guids } });
  }

  /** The envelopes handed over up to the empty-queue marker, each acknowledged; fails if the stream ends first. */
  async untilEmpty(): Promise<Envelope[]> {
    const envelopes: Envelope[] = [];
    for (;;) {
      const message = await this.next();
      if (message === 'end') {
        throw new Error(`the stream ended before QueueEmpty: ${this.error?.details ?? 'no error'}`);
      }
      if (message.queueEmpty) return envelopes;
      if (message.envelope) {
        envelopes.push(message.envelope);
        this.ack([message.envelope.guid]);
      }
    }
  }
}

/** The gateway's public API as a raw client sees it: register, send opaque bytes, connect. */
export class PublicApi {
  readonly accounts: AccountServiceClient;
  readonly messaging: MessagingServiceClient;

  constructor(gateway: string) {
    this.accounts = new AccountServiceClient(gateway, gatewayCredentials());
    this.messaging = new MessagingServiceClient(gateway, gatewayCredentials());
  }

  async register(username = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`): Promise<Device> {
    const generated = generateDeviceKeys(20);
    const registered = await unary(this.accounts.register.bind(this.accounts), {
      username,
      identityKey: Buffer.from(generated.identity.publicKey.serialize()),
      device: publicDeviceKeys(generated),
    });
    const auth = authorizationMetadata(registered);
    return { accountId: registered.accountId, registrationId: generated.registrationId, auth };
  }

  /** Sends `body` (any bytes: the platform never reads them) to the destination's device 1. */
  send(from: Device, to: Device, body: string | Uint8Array): Promise<SendResponse> {
    return unary(
      this.messaging.send.bind(this.messaging),
      opaqueSendRequest(to, typeof body === 'string' ? Buffer.from(body) : body),
      { metadata: from.auth },
    );
  }

  connect(device: Device): Inbox {
    return new Inbox(this.messaging.connect(device.auth));
  }

  /** The bodies of what the device is handed on connecting, acknowledged, up to the empty-queue marker. */
  async drain(device: Device): Promise<string[]> {
    const inbox = this.connect(device);
    try {
      return (await inbox.untilEmpty()).map((envelope) => Buffer.from(envelope.content).toString());
    } finally {
      inbox.call.end();
    }
  }

  close(): void {
    this.accounts.close();
    this.messaging.close();
  }
}
