import type { ChannelOptions } from '@grpc/grpc-js';

const MiB = 1024 * 1024;

/**
 * What one connection may hold of a server, set explicitly rather than left
 * to grpc-js's defaults (which allow unlimited concurrent streams and never
 * close an idle or dead connection).
 */
export interface ServerLimits {
  /** HTTP/2 streams one connection may have open at once; more wait on the client. */
  readonly maxConcurrentStreams: number;
  /** Largest request message; a bigger one is refused with RESOURCE_EXHAUSTED, unread. */
  readonly maxReceiveBytes: number;
  /** Largest response message the server will send. */
  readonly maxSendBytes: number;
  /** The server pings a connection silent this long... */
  readonly keepaliveTimeMs: number;
  /** ...and closes it, with every call on it, if the ping is not answered within this. */
  readonly keepaliveTimeoutMs: number;
  /** A connection with no call open for this long is closed (a Connect stream is a call). */
  readonly maxIdleMs: number;
  /** HTTP/2 session memory (headers, buffered frames) per connection, in MiB, before new streams are refused. */
  readonly maxSessionMemoryMiB: number;
}

/**
 * The gateway, facing clients. A client needs a Connect stream and a few
 * calls at a time; 100 streams (HTTP/2's recommended minimum, nginx's
 * default 128) leaves room and stops one connection from opening thousands.
 * 4 MiB holds the largest request (a Send to six devices of 256 KiB each, or
 * a 1 MiB backup chunk). A phone that vanished without closing its socket is
 * found by a ping within 80 s and its stream freed.
 */
export const PUBLIC_SERVER_LIMITS: ServerLimits = {
  maxConcurrentStreams: 100,
  maxReceiveBytes: 4 * MiB,
  maxSendBytes: 4 * MiB,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  maxIdleMs: 5 * 60_000,
  maxSessionMemoryMiB: 10,
};

/**
 * Internal services, called by other services over a few long-lived
 * connections that each carry one gateway's or relay's share of the traffic,
 * so many calls at once. Their largest messages are bounded by the callers
 * (mailbox pages at 2 MiB, presence calls at 1000 devices).
 */
export const INTERNAL_SERVER_LIMITS: ServerLimits = {
  maxConcurrentStreams: 2_000,
  maxReceiveBytes: 8 * MiB,
  maxSendBytes: 8 * MiB,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  maxIdleMs: 30 * 60_000,
  maxSessionMemoryMiB: 64,
};

/** grpc-js server options for these limits. */
export function serverLimitOptions(limits: ServerLimits): ChannelOptions {
  return {
    'grpc.max_concurrent_streams': limits.maxConcurrentStreams,
    'grpc.max_receive_message_length': limits.maxReceiveBytes,
    'grpc.max_send_message_length': limits.maxSendBytes,
    'grpc.keepalive_time_ms': limits.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': limits.keepaliveTimeoutMs,
    'grpc.max_connection_idle_ms': limits.maxIdleMs,
    'grpc-node.max_session_memory': limits.maxSessionMemoryMiB,
  };
}
