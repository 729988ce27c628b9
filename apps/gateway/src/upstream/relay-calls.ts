import { Inject, Injectable } from '@nestjs/common';
import { mailboxPageWorstCaseBytes, RELAY_BATCH_MAX_BYTES, RELAY_BATCH_MAX_CALLS } from '@sotto/contracts';
import type {
  AckRequest,
  AckResponse,
  ReadMailboxRequest,
  ReadMailboxResponse,
  SendRequest,
  SendResponse,
} from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { CallBatcher } from '@sotto/platform/batching';
import { outcomesOf } from '@sotto/platform/grpc';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from './upstream';

/** A mailbox read that takes longer has failed, and the drain is retried: a hung relay never stalls a device for good. */
export const READ_TIMEOUT_MS = 10_000;
/** Acknowledgements likewise: a stream whose acknowledgements cannot reach the relay ends, and its device reconnects. */
const ACK_TIMEOUT_MS = 10_000;
/** A Send's request beyond its envelopes' content: ids, timestamps, framing. */
const SEND_OVERHEAD_BYTES = 200;

/**
 * The relay's Send, ReadMailbox and Ack as this gateway's devices make them,
 * gathered into SendBatch, ReadMailboxBatch and AckBatch calls: while
 * RELAY_BATCH_CONCURRENCY batches of a kind are in flight, the calls made
 * meanwhile wait and go together in the next (see CallBatcher). Each call
 * gets its own answer, errors included, exactly as the unary call gave it.
 */
@Injectable()
export class RelayCalls {
  private readonly sends: CallBatcher<SendRequest, SendResponse>;
  private readonly reads: CallBatcher<ReadMailboxRequest, ReadMailboxResponse>;
  private readonly acks: CallBatcher<AckRequest, AckResponse>;

  constructor(upstream: Upstream, @Inject(GATEWAY_ENV) env: GatewayEnv) {
    const relay = upstream.relay;
    const limits = {
      concurrency: env.RELAY_BATCH_CONCURRENCY,
      maxCalls: RELAY_BATCH_MAX_CALLS,
      maxBytes: RELAY_BATCH_MAX_BYTES,
    };
    this.sends = new CallBatcher(
      async (sends) => outcomesOf('message-relay', (await relay.sendBatch({ sends })).outcomes),
      {
        ...limits,
        sizeOf: (send) =>
          send.envelopes.reduce((total, envelope) => total + envelope.content.length, SEND_OVERHEAD_BYTES),
      },
    );
    this.reads = new CallBatcher(
      async (reads) =>
        outcomesOf(
          'message-relay',
          (await relay.readMailboxBatch({ reads }, undefined, { deadline: Date.now() + READ_TIMEOUT_MS }))
            .outcomes,
        ),
      { ...limits, sizeOf: (read) => mailboxPageWorstCaseBytes(read.maxBytes) },
    );
    this.acks = new CallBatcher(
      async (acks) =>
        outcomesOf(
          'message-relay',
          (await relay.ackBatch({ acks }, undefined, { deadline: Date.now() + ACK_TIMEOUT_MS })).outcomes,
        ),
      // A GUID is 36 characters; an acknowledgement carries at most 1000.
      { ...limits, sizeOf: (ack) => 64 + 40 * ack.guids.length },
    );
  }

  /** Answers once Kafka holds the envelopes, or with the error Send would have given. */
  send(request: SendRequest): Promise<SendResponse> {
    return this.sends.call(request);
  }

  readMailbox(request: ReadMailboxRequest): Promise<ReadMailboxResponse> {
    return this.reads.call(request);
  }

  ack(request: AckRequest): Promise<AckResponse> {
    return this.acks.call(request);
  }
}
