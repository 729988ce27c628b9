/**
 * Sizes of the relay's batched calls (RelayService's SendBatch,
 * ReadMailboxBatch and AckBatch), which the gateway and the relay both keep
 * to. Internal calls carry at most 8 MiB; a batch stays well under it.
 */
export const RELAY_BATCH_MAX_CALLS = 1000;

/** The most bytes of requests (SendBatch) or of pages (ReadMailboxBatch) one batch may carry. */
export const RELAY_BATCH_MAX_BYTES = 6 * 1024 * 1024;

/** The relay's cap on one page of a mailbox read (a read asking for 0 or more gets this). */
export const MAILBOX_PAGE_MAX_BYTES = 2 * 1024 * 1024;

/**
 * The most bytes a page can hold for a read asking for `maxBytes`: a page
 * stops before the envelope that would take it past its budget, but always
 * holds one when any is queued, and an envelope is up to 256 KiB (with its
 * addressing, under 257 KiB).
 */
export function mailboxPageWorstCaseBytes(maxBytes: number): number {
  const budget = maxBytes === 0 ? MAILBOX_PAGE_MAX_BYTES : Math.min(maxBytes, MAILBOX_PAGE_MAX_BYTES);
  return Math.max(budget, 257 * 1024);
}
