import { Controller } from '@nestjs/common';
import type { Metadata, ServerDuplexStream } from '@grpc/grpc-js';
import {
  MessagingServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type SendMultiRecipientRequest,
  type SendMultiRecipientResponse,
  type SendRequest,
  type SendResponse,
  type SendSealedRequest,
  type SendSealedResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { Direct, GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { callerOf, Public } from '../auth/device-auth.guard';
import { AckQueue } from './ack-queue';
import { DeliveryStreams, type DeliveryStream, type StreamOutlet } from './delivery-streams';
import { LastSeen } from './last-seen';
import { InboundHolds } from './inbound-holds';
import { MultiRecipientSends } from './multi-recipient-sends';
import { SealedSends } from './sealed-sends';
import { Sends } from './sends';

type ConnectCall = ServerDuplexStream<ConnectRequest, ConnectResponse>;

/**
 * A Connect call as a stream's outlet. What write() refuses the call keeps,
 * in order, until 'drain'; the stream pushes no envelope while the call is
 * congested, so that stays small and a device that does not read holds only
 * what HTTP/2 flow control lets through.
 */
function outletOf(call: ConnectCall, end: () => void): StreamOutlet {
  return {
    push: (message) => void call.write(message),
    get congested() {
      return call.writableNeedDrain;
    },
    ready: () => new Promise<void>((resolve) => call.once('drain', () => resolve())),
    end,
  };
}

/**
 * The public MessagingService: Send, SendSealed, SendMultiRecipient, and the per-device Connect
 * stream, on which a connected device also sends. All are the message path,
 * so all are served directly on grpc-js (@Direct(): authenticated and limited by
 * GatewayCallAdmission), without NestJS's per-call RxJS pipeline.
 */
@Controller()
@GrpcService(MessagingServiceService)
export class MessagingController implements GrpcController<
  typeof MessagingServiceService,
  'send' | 'connect' | 'sendSealed' | 'sendMultiRecipient'
> {
  constructor(
    private readonly sends: Sends,
    private readonly sealedSends: SealedSends,
    private readonly multiRecipientSends: MultiRecipientSends,
    private readonly streams: DeliveryStreams,
    private readonly lastSeen: LastSeen,
  ) {}

  @Direct()
  send(request: SendRequest, metadata: Metadata): Promise<SendResponse> {
    return this.sends.send(callerOf(metadata), request);
  }

  /** No device credential: the destination's access key authorises it (see SealedSends). */
  @Direct()
  @Public()
  sendSealed(request: SendSealedRequest): Promise<SendSealedResponse> {
    return this.sealedSends.send(request);
  }

  /** A group message in one upload; the recipients' combined access key authorises it (see MultiRecipientSends). */
  @Direct()
  @Public()
  sendMultiRecipient(request: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    return this.multiRecipientSends.send(request);
  }

  /**
   * Opens the device's delivery stream, forwards its acknowledgements and
   * answers its sends. Settles when the call is over: the stream ended (the
   * client half-closed, was displaced or revoked, or the gateway stops), the
   * client cancelled, or it failed (too many acknowledgements waiting, the
   * relay or presence refused). Sends in flight then finish unanswered.
   */
  @Direct()
  connect(call: ConnectCall, metadata: Metadata): Promise<void> {
    const device = callerOf(metadata);
    return new Promise<void>((resolve, reject) => {
      let stream: DeliveryStream | undefined;
      let over = false;
      const settle = (outcome: () => void): void => {
        if (over) return;
        over = true;
        sends.close();
        stream?.close();
        outcome();
      };
      const finish = (): void => settle(resolve);
      const fail = (error: unknown): void =>
        settle(() => reject(error instanceof Error ? error : new Error(String(error))));
      const outlet = outletOf(call, finish);
      const reading = new InboundHolds(call);
      // Acknowledgements wait here (bounded) while the stream opens; reading pauses meanwhile,
      // so sends are taken only once it is open. Past its allowance of sends, reading pauses too.
      const acks = new AckQueue((guids) => this.streams.forwardAcks(device, guids), reading.holder(), fail);
      const sends = this.sends.onStream(device, call, outlet, reading.holder());
      call.on('data', (request: ConnectRequest) => {
        if (request.ack) {
          if (acks.add(request.ack.guids)) stream?.acknowledged(request.ack.guids);
        } else if (request.send) sends.take(request.send);
      });
      call.on('end', () => stream?.close());
      call.on('error', () => stream?.close());
      call.on('cancelled', finish);
      // Recorded before the stream opens (a directory write once a day at most), so a device
      // listing read once the stream answered shows today.
      this.lastSeen
        .seen(device)
        .then(() => this.streams.open(device, outlet))
        .then((opened) => {
          // The call ended while the stream was opening.
          if (over) opened.close();
          stream = opened;
          acks.start();
        })
        .catch(fail);
    });
  }
}
