import { InterceptingCall, status, type Interceptor } from '@grpc/grpc-js';
import { Inject, Injectable } from '@nestjs/common';
import { mailboxPageWorstCaseBytes, RELAY_BATCH_MAX_BYTES, RELAY_BATCH_MAX_CALLS } from '@sotto/contracts';
import type {
  AckRequest,
  AckResponse,
  ReadMailboxRequest,
  ReadMailboxResponse,
  SendBatchResponse,
  SendMultiRecipientRequest,
  SendMultiRecipientResponse,
  SendRequest,
  SendResponse,
} from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { CallBatcher } from '@sotto/platform/batching';
import { grpcError, outcomesOf } from '@sotto/platform/grpc';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from './upstream';

/** A mailbox read that takes longer has failed, and the drain is retried: a hung relay never stalls a device for good. */
export const READ_TIMEOUT_MS = 10_000;
/** Acknowledgements likewise: a stream whose acknowledgements cannot reach the relay ends, and its device reconnects. */
const ACK_TIMEOUT_MS = 10_000;
/** A Send's request beyond its envelopes' content: ids, timestamps, framing. */
const SEND_OVERHEAD_BYTES = 200;

/**
 * A call that notes, through `onDeadline`, that it ended with
 * DEADLINE_EXCEEDED: the upstream client reports that as UNAVAILABLE, which
 * would tell a sender its message was not taken, when it may have been.
 */
function noticingDeadline(onDeadline: () => void): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) =>
        next(metadata, {
          onReceiveStatus: (received, nextStatus) => {
            if (received.code === status.DEADLINE_EXCEEDED) onDeadline();
            nextStatus(received);
          },
        }),
    });
}

/**
 * What each Send of a batch the relay did not answer in time is told. The
 * relay may have taken its envelopes (it answers only once Kafka holds them),
 * and it gives every Send fresh GUIDs, so a Send made again is a new message:
 * the recipient may get both.
 */
function sendTimedOut(timeoutMs: number): Error {
  return grpcError(
    status.DEADLINE_EXCEEDED,
    `message-relay did not answer within ${timeoutMs} ms: whether the message was accepted is unknown, ` +
      'and sending it again may deliver it twice',
  );
}

/**
 * The relay's SendBatch of `sends`, given `timeoutMs` to answer: past it the
 * call is cancelled and each Send fails with sendTimedOut.
 */
async function sendBatch(
  relay: Upstream['relay'],
  sends: SendRequest[],
  timeoutMs: number,
): Promise<SendBatchResponse['outcomes']> {
  let timedOut = false;
  try {
    const answer = await relay.sendBatch({ sends }, undefined, {
      deadline: Date.now() + timeoutMs,
      interceptors: [noticingDeadline(() => (timedOut = true))],
    });
    return answer.outcomes;
  } catch (error) {
    throw timedOut ? sendTimedOut(timeoutMs) : error;
  }
}

/**
 * The relay's Send, ReadMailbox and Ack as this gateway's devices make them,
 * gathered into SendBatch, ReadMailboxBatch and AckBatch calls: while
 * RELAY_BATCH_CONCURRENCY batches of a kind (RELAY_ACK_BATCH_CONCURRENCY of
 * acknowledgements) are in flight, the calls made meanwhile wait and go
 * together in the next (see CallBatcher). Each call
 * gets its own answer, errors included, exactly as the unary call gave it.
 * Every batch has a deadline, so a relay that hangs holds no device's calls
 * (nor a stream's send budget) for long.
 */
@Injectable()
export class RelayCalls {
  private readonly sends: CallBatcher<SendRequest, SendResponse>;
  private readonly reads: CallBatcher<ReadMailboxRequest, ReadMailboxResponse>;
  private readonly acks: CallBatcher<AckRequest, AckResponse>;
  private readonly relay: Upstream['relay'];
  private readonly sendTimeoutMs: number;

  constructor(upstream: Upstream, @Inject(GATEWAY_ENV) env: GatewayEnv) {
    const relay = upstream.relay;
    this.relay = relay;
    this.sendTimeoutMs = env.RELAY_SEND_TIMEOUT_MS;
    const limits = {
      concurrency: env.RELAY_BATCH_CONCURRENCY,
      maxCalls: RELAY_BATCH_MAX_CALLS,
      maxBytes: RELAY_BATCH_MAX_BYTES,
    };
    this.sends = new CallBatcher(
      async (sends) => outcomesOf('message-relay', await sendBatch(relay, sends, env.RELAY_SEND_TIMEOUT_MS)),
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
      {
        ...limits,
        concurrency: env.RELAY_ACK_BATCH_CONCURRENCY,
        sizeOf: (ack) => 64 + 40 * ack.guids.length,
      },
    );
  }

  /**
   * Answers once Kafka holds the envelopes, or with the error Send would have
   * given; DEADLINE_EXCEEDED when the relay did not answer its batch within
   * RELAY_SEND_TIMEOUT_MS (a Send that waited for a batch to go waits longer).
   */
  send(request: SendRequest): Promise<SendResponse> {
    return this.sends.call(request);
  }

  /**
   * A group message in one upload, on its own call (it may be near a
   * megabyte, a batch's worth): answered once Kafka holds it, or as Send
   * is when the relay does not answer within RELAY_SEND_TIMEOUT_MS.
   */
  async sendMultiRecipient(request: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    let timedOut = false;
    try {
      return await this.relay.sendMultiRecipient(request, undefined, {
        deadline: Date.now() + this.sendTimeoutMs,
        interceptors: [noticingDeadline(() => (timedOut = true))],
      });
    } catch (error) {
      throw timedOut ? sendTimedOut(this.sendTimeoutMs) : error;
    }
  }

  readMailbox(request: ReadMailboxRequest): Promise<ReadMailboxResponse> {
    return this.reads.call(request);
  }

  ack(request: AckRequest): Promise<AckResponse> {
    return this.acks.call(request);
  }
}
