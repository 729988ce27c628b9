import { randomFillSync } from 'node:crypto';

/** How many GUIDs' random bytes are drawn from the CSPRNG at once, as Node's randomUUID caches them. */
const POOLED = 256;
const pool = Buffer.alloc(16 * POOLED);
let taken = POOLED;

/**
 * A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Sorts
 * by creation time, which keeps GUIDs of one sender roughly in order. The
 * random bits come from a pool refilled from the CSPRNG every 256 GUIDs: one
 * call into it per GUID was 1.5% of the relay's time under load.
 */
export function uuidv7(now = Date.now()): string {
  if (taken === POOLED) {
    randomFillSync(pool);
    taken = 0;
  }
  const bytes = pool.subarray(16 * taken, 16 * ++taken);
  bytes.writeUIntBE(now, 0, 6);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x70;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
