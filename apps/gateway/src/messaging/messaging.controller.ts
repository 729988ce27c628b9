import { Controller } from '@nestjs/common';
import type { Metadata, ServerDuplexStream } from '@grpc/grpc-js';
import {
  MessagingServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { Direct, GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { callerOf } from '../auth/device-auth.guard';
import { RelayCalls } from '../upstream/relay-calls';
import { AckQueue } from './ack-queue';
import { DeliveryStreams, type DeliveryStream, type StreamOutlet } from './delivery-streams';

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
 * The public MessagingService: Send, and the per-device Connect stream. Both
 * are the message path, so both are served directly on grpc-js (@Direct():
 * authenticated and limited by GatewayCallAdmission), without NestJS's
 * per-call RxJS pipeline.
 */
@Controller()
@GrpcService(MessagingServiceService)
export class MessagingController implements GrpcController<
  typeof MessagingServiceService,
  'send' | 'connect'
> {
  constructor(
    private readonly relay: RelayCalls,
    private readonly streams: DeliveryStreams,
  ) {}

  @Direct()
  send(request: SendRequest, metadata: Metadata): Promise<SendResponse> {
    const caller = callerOf(metadata);
    return this.relay.send({
      ...request,
      sourceAccountId: caller.accountId,
      sourceDeviceId: caller.deviceId,
    });
  }

  /**
   * Opens the device's delivery stream and forwards its acknowledgements.
   * Settles when the call is over: the stream ended (the client half-closed,
   * was displaced or revoked, or the gateway stops), the client cancelled,
   * or it failed (too many acknowledgements waiting, the relay or presence
   * refused).
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
        stream?.close();
        outcome();
      };
      const finish = (): void => settle(resolve);
      const fail = (error: unknown): void =>
        settle(() => reject(error instanceof Error ? error : new Error(String(error))));
      // Acknowledgements wait here (bounded) while the stream opens; reading pauses meanwhile.
      const acks = new AckQueue((guids) => this.streams.forwardAcks(device, guids), call, fail);
      call.on('data', (request: ConnectRequest) => {
        if (request.ack && acks.add(request.ack.guids)) stream?.acknowledged(request.ack.guids);
      });
      call.on('end', () => stream?.close());
      call.on('error', () => stream?.close());
      call.on('cancelled', finish);
      this.streams
        .open(device, outletOf(call, finish))
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
