import { Controller } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  MessagingServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { GrpcService, type GrpcController } from '@sotto/platform/grpc';
import { Observable } from 'rxjs';
import { callerOf } from '../auth/device-auth.guard';
import { Upstream } from '../upstream/upstream';
import { DeliveryStreams, type DeliveryStream } from './delivery-streams';

/** The public MessagingService: Send, and the per-device Connect stream. */
@Controller()
@GrpcService(MessagingServiceService)
export class MessagingController implements GrpcController<typeof MessagingServiceService> {
  constructor(
    private readonly upstream: Upstream,
    private readonly streams: DeliveryStreams,
  ) {}

  send(request: SendRequest, metadata: Metadata): Promise<SendResponse> {
    const caller = callerOf(metadata);
    return this.upstream.relay.send({
      ...request,
      sourceAccountId: caller.accountId,
      sourceDeviceId: caller.deviceId,
    });
  }

  connect(requests: Observable<ConnectRequest>, metadata: Metadata): Observable<ConnectResponse> {
    const device = callerOf(metadata);
    return new Observable<ConnectResponse>((subscriber) => {
      let stream: DeliveryStream | undefined;
      // Acknowledgements that arrive while the stream is being opened.
      const pendingAcks: string[][] = [];
      const acknowledge = (guids: string[]): void => {
        if (!stream) {
          pendingAcks.push(guids);
          return;
        }
        stream.acknowledge(guids).catch((error: unknown) => subscriber.error(error));
      };
      const inbound = requests.subscribe({
        next: (request) => {
          if (request.ack) acknowledge(request.ack.guids);
        },
        error: () => stream?.close(),
        complete: () => stream?.close(),
      });
      this.streams
        .open(
          device,
          (message) => subscriber.next(message),
          () => subscriber.complete(),
        )
        .then((opened) => {
          stream = opened;
          pendingAcks.splice(0).forEach(acknowledge);
        })
        .catch((error: unknown) => subscriber.error(error));
      return () => {
        inbound.unsubscribe();
        stream?.close();
      };
    });
  }
}
