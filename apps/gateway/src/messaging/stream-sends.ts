import { status } from '@grpc/grpc-js';
import type { CallError } from '@sotto/contracts/generated/sotto/common/v1/call_error';
import type {
  SendRequest,
  SendResponse,
  StreamSend,
  StreamSendResult,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { InboundFlow } from './ack-queue';
import type { StreamOutlet } from './delivery-streams';

export interface StreamSendLimits {
  /** Sends taken from the stream and not yet answered. */
  readonly sends: number;
  /** Bytes of their envelopes' content; one send is taken even when it alone is larger. */
  readonly bytes: number;
}

/** What Send answered, or the error it failed with, as the client is told it. */
export type SendOutcome = { readonly sent: SendResponse } | { readonly error: CallError };

/** Sends as Send does, for the stream's device. */
export interface StreamSendHandler {
  /** Answers with Send's response or its error; never rejects. */
  send(request: SendRequest): Promise<SendOutcome>;
  /** A send refused here, never handed on (its request id was in flight already). */
  refused(error: CallError): void;
}

/** A send without a request is Send's request with nothing set, refused as that would be. */
const EMPTY_REQUEST: SendRequest = {
  destinationAccountId: '',
  clientTimestampMs: '0',
  ephemeral: false,
  envelopes: [],
};

function contentBytesOf(request: SendRequest): number {
  return request.envelopes.reduce((total, envelope) => total + envelope.content.length, 0);
}

function duplicateOf(requestId: string): CallError {
  return {
    code: status.INVALID_ARGUMENT,
    details: `send.request_id: ${requestId} is already in flight on this stream`,
    trailers: [],
  };
}

/**
 * A Connect stream's sends, each answered on the stream with its request id.
 * At most `limits` are held at once: a send is held from the moment it is
 * read until its result is written and the call is not congested, so a
 * device that does not read its results holds no more than that either. At
 * the limit the device's further requests are left unread, in HTTP/2 flow
 * control. Once the stream is closed, sends in flight still finish at the
 * relay and their results are dropped.
 */
export class StreamSends {
  private readonly unanswered = new Set<string>();
  private heldSends = 0;
  private heldBytes = 0;
  /** Answered while the call was congested: given back once it has written what it held. */
  private afterDrain?: { sends: number; bytes: number };
  private paused = false;
  private closed = false;

  constructor(
    private readonly handler: StreamSendHandler,
    private readonly outlet: Pick<StreamOutlet, 'push' | 'congested' | 'ready'>,
    private readonly inbound: InboundFlow,
    private readonly limits: StreamSendLimits,
    private readonly onClose: () => void = () => undefined,
  ) {}

  /** Sends held now: being sent, or answered and not yet taken by the device. */
  get held(): number {
    return this.heldSends;
  }

  /** One send read from the stream. */
  take(send: StreamSend): void {
    if (this.closed) return;
    const request = send.request ?? EMPTY_REQUEST;
    const bytes = contentBytesOf(request);
    this.hold(1, bytes);
    const { requestId } = send;
    if (this.unanswered.has(requestId)) {
      const error = duplicateOf(requestId);
      this.handler.refused(error);
      this.answer({ requestId, error }, bytes);
      return;
    }
    this.unanswered.add(requestId);
    void this.handler.send(request).then((outcome) => {
      this.unanswered.delete(requestId);
      this.answer({ requestId, ...outcome }, bytes);
    });
  }

  /** The stream ended: nothing more is taken or answered. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.onClose();
  }

  private answer(result: StreamSendResult, bytes: number): void {
    if (this.closed) return;
    this.outlet.push({ sendResult: result });
    if (!this.outlet.congested) {
      this.release(1, bytes);
      return;
    }
    if (this.afterDrain !== undefined) {
      this.afterDrain.sends += 1;
      this.afterDrain.bytes += bytes;
      return;
    }
    const waiting = (this.afterDrain = { sends: 1, bytes });
    void this.outlet.ready().then(() => {
      this.afterDrain = undefined;
      this.release(waiting.sends, waiting.bytes);
    });
  }

  private hold(sends: number, bytes: number): void {
    this.heldSends += sends;
    this.heldBytes += bytes;
    this.updateFlow();
  }

  private release(sends: number, bytes: number): void {
    this.hold(-sends, -bytes);
  }

  private updateFlow(): void {
    if (this.closed) return;
    const full = this.heldSends >= this.limits.sends || this.heldBytes >= this.limits.bytes;
    if (full === this.paused) return;
    this.paused = full;
    if (full) this.inbound.pause();
    else this.inbound.resume();
  }
}
