/**
 * The most devices (or envelopes) one PresenceService call may name. A call
 * with more is refused whole with RESOURCE_EXHAUSTED, so callers split their
 * lists with presenceBatches. At this size a call is about 50 KB, far below
 * gRPC's 4 MiB message limit, and one Redis script or pipeline stays short.
 */
export const PRESENCE_MAX_PER_CALL = 1000;

/** A list split, in order, into batches of at most PRESENCE_MAX_PER_CALL: one presence call each. */
export function presenceBatches<T>(items: readonly T[]): T[][] {
  const batches: T[][] = [];
  for (let start = 0; start < items.length; start += PRESENCE_MAX_PER_CALL) {
    batches.push(items.slice(start, start + PRESENCE_MAX_PER_CALL));
  }
  return batches;
}
