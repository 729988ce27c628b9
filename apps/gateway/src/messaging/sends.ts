import { Inject, Injectable, Logger } from '@nestjs/common';
import { status, type Metadata } from '@grpc/grpc-js';
import {
  MessagingServiceService,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { callErrorOf } from '@sotto/platform/grpc';
import type { AuthenticatedDevice } from '../auth/authenticator';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { CallLimits } from '../limits/call-limits';
import { RelayCalls } from '../upstream/relay-calls';
import type { InboundFlow } from './ack-queue';
import type { StreamOutlet } from './delivery-streams';
import { StreamSendMetrics } from './stream-send-metrics';
import { StreamSends, type SendOutcome, type StreamSendLimits } from './stream-sends';

/** A Connect call as its sends need it: who it is, for the call limits. */
export interface SendingCall {
  readonly metadata: Metadata;
  getPeer(): string;
}

/**
 * Send, whether it comes as the unary call or on the device's Connect
 * stream: the same call limits (the same buckets and refusals: a device
 * gains nothing by switching), the same relay call, and the sender always
 * the authenticated device, never anything in the request.
 */
@Injectable()
export class Sends {
  private readonly logger = new Logger(Sends.name);
  private readonly limits: StreamSendLimits;
  private readonly open = new Set<StreamSends>();

  constructor(
    private readonly relay: RelayCalls,
    private readonly callLimits: CallLimits,
    private readonly metrics: StreamSendMetrics,
    @Inject(GATEWAY_ENV) env: GatewayEnv,
  ) {
    this.limits = { sends: env.CONNECT_SEND_MAX_IN_FLIGHT, bytes: env.CONNECT_SEND_MAX_IN_FLIGHT_BYTES };
    metrics.observe(() => {
      let held = 0;
      for (const sends of this.open) held += sends.held;
      return held;
    });
  }

  /** Send, once admitted (the unary call by GatewayCallAdmission): answered once Kafka holds the envelopes. */
  send(device: AuthenticatedDevice, request: SendRequest): Promise<SendResponse> {
    return this.relay.send({
      ...request,
      sourceAccountId: device.accountId,
      sourceDeviceId: device.deviceId,
      sealed: false,
    });
  }

  /**
   * The sends of one Connect call of `device`, answered on `outlet`; what
   * they may hold, and `inbound` paused meanwhile, as StreamSends says.
   * Close it when the call ends.
   */
  onStream(
    device: AuthenticatedDevice,
    call: SendingCall,
    outlet: Pick<StreamOutlet, 'push' | 'congested' | 'ready'>,
    inbound: InboundFlow,
  ): StreamSends {
    const peer = call.getPeer();
    const sends: StreamSends = new StreamSends(
      {
        send: (request) => this.sendOnStream(device, call.metadata, peer, request),
        refused: (error) => this.metrics.answered(error.code),
      },
      outlet,
      inbound,
      this.limits,
      () => this.open.delete(sends),
    );
    this.open.add(sends);
    return sends;
  }

  /** A send on a stream: admitted as the unary call is, after its credential (checked when the stream opened). */
  private async sendOnStream(
    device: AuthenticatedDevice,
    metadata: Metadata,
    peer: string,
    request: SendRequest,
  ): Promise<SendOutcome> {
    const answered = this.metrics.start();
    try {
      await this.callLimits.admit({ path: MessagingServiceService.send.path, peer, metadata, request });
      const sent = await this.send(device, request);
      answered(status.OK);
      return { sent };
    } catch (failure) {
      // What the unary call's client would be told: its own errors as they are, a bug as INTERNAL with an id.
      const error = callErrorOf(failure, (correlationId, bug) =>
        this.logger.error(
          `unhandled error in a send on a Connect stream (correlation id ${correlationId})`,
          bug instanceof Error ? bug.stack : String(bug),
        ),
      );
      answered(error.code);
      return { error };
    }
  }
}
