import { Controller } from '@nestjs/common';
import type { Metadata, ServerDuplexStream } from '@grpc/grpc-js';
import {
  MessagingServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { Observable, type Subscriber } from 'rxjs';
import { callerOf } from '../auth/device-auth.guard';
import { RelayCalls } from '../upstream/relay-calls';
import { AckQueue } from './ack-queue';
import { DeliveryStreams, type DeliveryStream, type StreamOutlet } from './delivery-streams';

/**
 * A Connect call as a stream's outlet. NestJS writes what the observable
 * emits with the call's write(), keeping what write() refuses in a list of
 * its own until 'drain' (writeObservableToGrpc); the stream pushes no
 * envelope while the call is congested, so that list stays empty and a
 * device that does not read holds only what HTTP/2 flow control lets through.
 */
function outletOf(
  call: ServerDuplexStream<ConnectRequest, ConnectResponse>,
  subscriber: Subscriber<ConnectResponse>,
): StreamOutlet {
  return {
    push: (message) => subscriber.next(message),
    get congested() {
      return call.writableNeedDrain;
    },
    ready: () => new Promise<void>((resolve) => call.once('drain', () => resolve())),
    end: () => subscriber.complete(),
  };
}

/** The public MessagingService: Send, and the per-device Connect stream. */
@Controller()
@GrpcService(MessagingServiceService)
export class MessagingController implements GrpcController<typeof MessagingServiceService> {
  constructor(
    private readonly relay: RelayCalls,
    private readonly streams: DeliveryStreams,
  ) {}

  send(request: SendRequest, metadata: Metadata): Promise<SendResponse> {
    const caller = callerOf(metadata);
    return this.relay.send({
      ...request,
      sourceAccountId: caller.accountId,
      sourceDeviceId: caller.deviceId,
    });
  }

  connect(
    requests: Observable<ConnectRequest>,
    metadata: Metadata,
    call: ServerDuplexStream<ConnectRequest, ConnectResponse>,
  ): Observable<ConnectResponse> {
    const device = callerOf(metadata);
    return new Observable<ConnectResponse>((subscriber) => {
      let stream: DeliveryStream | undefined;
      let gone = false;
      // Acknowledgements wait here (bounded) while the stream opens; reading pauses meanwhile.
      const acks = new AckQueue(
        (guids) => this.streams.forwardAcks(device, guids),
        call,
        (error: unknown) => subscriber.error(error),
      );
      const inbound = requests.subscribe({
        next: (request) => {
          if (request.ack && acks.add(request.ack.guids)) stream?.acknowledged(request.ack.guids);
        },
        error: () => stream?.close(),
        complete: () => stream?.close(),
      });
      this.streams
        .open(device, outletOf(call, subscriber))
        .then((opened) => {
          // The call ended while the stream was opening.
          if (gone) opened.close();
          stream = opened;
          acks.start();
        })
        .catch((error: unknown) => subscriber.error(error));
      return () => {
        gone = true;
        inbound.unsubscribe();
        stream?.close();
      };
    });
  }
}
