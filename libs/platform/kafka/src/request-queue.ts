/**
 * kafkajs 2.2.4 keeps one RequestQueue per broker connection, and its
 * scheduleCheckPendingRequests re-arms a timer after every check even when
 * nothing waits: unthrottled, the delay it computes is negative, Node runs it
 * after 1 ms, and the check schedules the next. Every connection a process
 * holds (admin, producer, consumer, group coordinator) so wakes it a thousand
 * times a second, idle or busy (tulios/kafkajs#1556, #1704; the fix in #1667
 * is not released). An idle relay spent 39 millicores on it.
 *
 * repairRequestQueue replaces the method with one that schedules a check only
 * when a request waits: every request that is queued calls it, and every
 * answer or timeout checks the queue itself, so nothing waits unseen.
 */

/** The part of kafkajs's RequestQueue that the repair and its spec use. */
export interface KafkajsRequestQueue {
  pending: unknown[];
  inflight: Map<number, unknown>;
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
  push(request: object): void;
  maybeThrottle(clientSideThrottleTimeMs: number): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  destroy(): void;
}

/** kafkajs's own RequestQueue class, the one its connections make. */
export const RequestQueue =
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a kafkajs internal: the package's exports and types stop at its public API
  require('kafkajs/src/network/requestQueue') as {
    new (options: object): KafkajsRequestQueue;
    prototype: KafkajsRequestQueue;
  };

/** kafkajs's own interval for re-checking a queue that waits on its in-flight limit. */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

function scheduleCheckPendingRequests(this: KafkajsRequestQueue): void {
  if (this.throttleCheckTimeoutId !== null || this.pending.length === 0) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    },
    untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS,
  );
}

/** Applies the repair, before or after connections exist (it replaces a prototype method); again is harmless. */
export function repairRequestQueue(): void {
  if (typeof RequestQueue.prototype.scheduleCheckPendingRequests !== 'function') {
    throw new Error(
      'kafkajs RequestQueue has no scheduleCheckPendingRequests: review the repair for this version',
    );
  }
  RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
}
