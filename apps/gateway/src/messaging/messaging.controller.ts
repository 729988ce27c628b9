import { Controller } from '@nestjs/common';
import type { Metadata } from '@grpc/grpc-js';
import {
  MessagingServiceControllerMethods,
  type ConnectRequest,
  type ConnectResponse,
  type MessagingServiceController,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/nest/sotto/gateway/v1/gateway';
import { callUpstream } from '@sotto/platform/grpc';
import { Observable } from 'rxjs';
import { Authenticator } from '../auth/authenticator';
import { Upstream } from '../upstream/upstream.module';
import { DeliveryStreams, type DeliveryStream } from './delivery-streams';

/** The public MessagingService: Send, and the per-device Connect stream. */
@Controller()
@MessagingServiceControllerMethods()
export class MessagingController implements MessagingServiceController {
  constructor(
    private readonly upstream: Upstream,
    private readonly auth: Authenticator,
    private readonly streams: DeliveryStreams,
  ) {}

  async send(request: SendRequest, metadata?: Metadata): Promise<SendResponse> {
    const caller = await this.auth.authenticate(metadata);
    return callUpstream(
      'message-relay',
      this.upstream.relay.send({
        ...request,
        sourceAccountId: caller.accountId,
        sourceDeviceId: caller.deviceId,
      }),
    );
  }

  connect(requests: Observable<ConnectRequest>, metadata?: Metadata): Observable<ConnectResponse> {
    return new Observable<ConnectResponse>((subscriber) => {
      let stream: DeliveryStream | undefined;
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
      this.auth
        .authenticate(metadata)
        .then((device) =>
          this.streams.open(
            device,
            (message) => subscriber.next(message),
            () => subscriber.complete(),
          ),
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
