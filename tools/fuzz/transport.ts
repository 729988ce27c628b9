/**
 * How the fuzzer reaches the gateway. Ordinary calls go through a grpc-js
 * Client with an identity serializer, so the request bodies are exactly the
 * bytes the fuzzer made; frames grpc-js would never send (a message cut off
 * mid-frame, a length prefix past any limit) go over a raw HTTP/2 stream.
 */
import { connect, constants, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import {
  Client,
  Metadata,
  status,
  type ChannelCredentials,
  type ServiceError,
  type StatusObject,
} from '@grpc/grpc-js';
import { authorization, FUZZ_CREDENTIAL, isHeavy, type Credential, type Entry } from './metadata';
import { DEFAULT_MAX_RECEIVE_BYTES } from './wire';

/** How a call ended, and what the server sent before it did. */
export interface Outcome {
  /** A gRPC status code, or CLIENT_REFUSED. */
  readonly code: number;
  readonly details: string;
  readonly responses: readonly Buffer[];
}

export interface MethodKind {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
}

/** Frames grpc-js would never send, written by hand. */
export type RawFrame =
  /** The last message's length prefix promises more bytes than the stream carries. */
  | 'truncated-frame'
  /** A length prefix past any receive limit (up to 4 GiB), followed by a few bytes. */
  | 'lying-frame-length';

/** One fuzzed call: its metadata and the request messages (one, unless the method streams requests). */
export interface CallInput {
  readonly metadata: readonly Entry[];
  readonly messages: readonly Buffer[];
  /** Sent over raw HTTP/2 with this broken frame at the end, instead of through grpc-js. */
  readonly raw?: RawFrame;
}

const bytes = (value: Buffer): Buffer => value;

/** The fuzz account's credential put in for its placeholder. */
function realEntries(entries: readonly Entry[], credential: Credential): Entry[] {
  return entries.map(([key, value]) => [key, value === FUZZ_CREDENTIAL ? authorization(credential) : value]);
}

function grpcMetadata(entries: readonly Entry[]): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of entries) metadata.add(key, value);
  return metadata;
}

/** A call the client itself could not make (bad metadata): not the server's answer, and counted apart. */
export const CLIENT_REFUSED = -1;

export class GatewayCaller {
  private readonly client: Client;
  /** A connection of its own for calls with heavy metadata, one call at a time (see isHeavy). */
  private readonly heavyClient: Client;
  private heavyLane: Promise<unknown> = Promise.resolve();
  private session: ClientHttp2Session | undefined;

  constructor(
    private readonly address: string,
    credentials: ChannelCredentials,
    private readonly ca: Buffer | undefined,
    private readonly timeoutMs: number,
  ) {
    const options = {
      // The fuzzer sends past the server's limits on purpose, and reads whatever comes back.
      'grpc.max_send_message_length': -1,
      'grpc.max_receive_message_length': -1,
    };
    this.client = new Client(address, credentials, options);
    this.heavyClient = new Client(address, credentials, { ...options, 'grpc.use_local_subchannel_pool': 1 });
  }

  close(): void {
    this.client.close();
    this.heavyClient.close();
    this.session?.destroy();
  }

  call(method: MethodKind, input: CallInput, credential: Credential): Promise<Outcome> {
    const entries = realEntries(input.metadata, credential);
    if (input.raw !== undefined) {
      return this.rawCall(method.path, entries, input.messages, input.raw);
    }
    let metadata: Metadata;
    try {
      metadata = grpcMetadata(entries);
    } catch {
      // Metadata grpc-js will not send (a tab in a value, say) goes over raw HTTP/2 as it is.
      return this.rawCall(method.path, entries, input.messages, undefined);
    }
    if (!isHeavy(entries)) return this.grpcCall(this.client, method, metadata, input.messages);
    const answer = this.heavyLane.then(() =>
      this.grpcCall(this.heavyClient, method, metadata, input.messages),
    );
    this.heavyLane = answer;
    return answer;
  }

  private grpcCall(
    client: Client,
    method: MethodKind,
    metadata: Metadata,
    messages: readonly Buffer[],
  ): Promise<Outcome> {
    const options = { deadline: Date.now() + this.timeoutMs };
    const responses: Buffer[] = [];
    return new Promise((resolve) => {
      const settle = (error: ServiceError | null, response?: Buffer): void => {
        if (response) responses.push(response);
        resolve(
          error
            ? { code: error.code, details: error.details, responses }
            : { code: status.OK, details: '', responses },
        );
      };
      const first = messages[0] ?? Buffer.alloc(0);
      if (!method.requestStream && !method.responseStream) {
        client.makeUnaryRequest(method.path, bytes, bytes, first, metadata, options, settle);
        return;
      }
      if (!method.requestStream) {
        const call = client.makeServerStreamRequest(method.path, bytes, bytes, first, metadata, options);
        call.on('data', (data: Buffer) => responses.push(data));
        call.on('error', () => undefined);
        call.on('status', ({ code, details }: StatusObject) => resolve({ code, details, responses }));
        return;
      }
      const call = method.responseStream
        ? client.makeBidiStreamRequest(method.path, bytes, bytes, metadata, options)
        : client.makeClientStreamRequest(method.path, bytes, bytes, metadata, options, settle);
      call.on('error', () => undefined);
      if (method.responseStream) {
        call.on('data', (data: Buffer) => responses.push(data));
        call.on('status', ({ code, details }: StatusObject) => resolve({ code, details, responses }));
      }
      for (const message of messages) call.write(message);
      call.end();
    });
  }

  private rawSession(): ClientHttp2Session {
    if (this.session && !this.session.closed && !this.session.destroyed) return this.session;
    const session = connect(`https://${this.address}`, {
      ...(this.ca ? { ca: this.ca } : {}),
      minVersion: 'TLSv1.3',
    });
    session.on('error', () => undefined);
    session.unref();
    this.session = session;
    return session;
  }

  /** Every message framed as it should be, except the last one when `raw` says how to break it. */
  private rawCall(
    path: string,
    entries: readonly Entry[],
    messages: readonly Buffer[],
    raw: RawFrame | undefined,
  ): Promise<Outcome> {
    const frames = messages.slice(0, -1).map((message) => frame(message, message.length));
    const last = messages[messages.length - 1] ?? Buffer.alloc(0);
    if (raw === undefined) {
      if (messages.length > 0) frames.push(frame(last, last.length));
    } else if (raw === 'truncated-frame') {
      // Promises the whole message, sends half of it, and ends the stream.
      frames.push(frame(last.subarray(0, Math.floor(last.length / 2)), Math.max(1, last.length)));
    } else {
      const claims = [DEFAULT_MAX_RECEIVE_BYTES + 1, 2 ** 31, 2 ** 32 - 1];
      frames.push(frame(last.subarray(0, 16), claims[last.length % claims.length] ?? 2 ** 32 - 1));
    }
    const headers: Record<string, string | string[]> = {
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
    };
    for (const [key, value] of entries) {
      const text = typeof value === 'string' ? value : value.toString('base64');
      const existing = headers[key];
      headers[key] =
        existing === undefined ? text : [...(Array.isArray(existing) ? existing : [existing]), text];
    }
    return new Promise((resolve) => {
      let answer: { code: number; details: string } | undefined;
      const read = (received: IncomingHttpHeaders): void => {
        const code = received['grpc-status'];
        if (code !== undefined) {
          const message = received['grpc-message'];
          answer = {
            code: Number(code),
            details: percentDecoded(typeof message === 'string' ? message : ''),
          };
        }
      };
      let stream;
      try {
        stream = this.rawSession().request(headers, { endStream: false });
      } catch (error) {
        resolve({ code: CLIENT_REFUSED, details: (error as Error).message, responses: [] });
        return;
      }
      const responses: Buffer[] = [];
      const timer = setTimeout(() => stream.close(constants.NGHTTP2_CANCEL), this.timeoutMs);
      stream.on('response', read);
      stream.on('trailers', read);
      stream.on('data', (chunk: Buffer) => responses.push(chunk));
      stream.on('error', () => undefined);
      stream.on('close', () => {
        clearTimeout(timer);
        resolve(answer ? { ...answer, responses } : { ...withoutStatus(stream.rstCode), responses });
      });
      stream.end(Buffer.concat(frames));
    });
  }
}

/** A grpc-message trailer as text; one that is not valid percent-encoding as it came. */
function percentDecoded(message: string): string {
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

/** A gRPC length-prefixed message frame (uncompressed) that claims `length` bytes. */
export function frame(message: Buffer, length: number): Buffer {
  const header = Buffer.alloc(5);
  header.writeUInt8(0, 0);
  header.writeUInt32BE(length >>> 0, 1);
  return Buffer.concat([header, message]);
}

/** What grpc-js would report for a stream that ended without a gRPC status, from its RST_STREAM code. */
function withoutStatus(rstCode: number | undefined): { code: status; details: string } {
  switch (rstCode) {
    case constants.NGHTTP2_REFUSED_STREAM:
      return { code: status.UNAVAILABLE, details: 'stream refused without a status' };
    case constants.NGHTTP2_CANCEL:
      return {
        code: status.DEADLINE_EXCEEDED,
        details: 'no answer before the fuzzer gave up (stream cancelled)',
      };
    case constants.NGHTTP2_ENHANCE_YOUR_CALM:
      return { code: status.RESOURCE_EXHAUSTED, details: 'stream reset: ENHANCE_YOUR_CALM' };
    case constants.NGHTTP2_INADEQUATE_SECURITY:
      return { code: status.PERMISSION_DENIED, details: 'stream reset: INADEQUATE_SECURITY' };
    default:
      return {
        code: status.INTERNAL,
        details: `stream ended without a gRPC status (RST_STREAM code ${rstCode ?? 'none'})`,
      };
  }
}
