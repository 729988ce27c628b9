/**
 * The metadata of a fuzzed call: none, the fuzz account's own credential, or
 * garbage in the `authorization` entry (and around it). Values stay within
 * what HTTP/2 headers can carry (grpc-js refuses anything else before it
 * leaves the client): printable ASCII, and raw bytes in `-bin` entries.
 */
import { formatDeviceCredential } from '@sotto/platform/ids';
import type { Random } from './random';

export interface Credential {
  readonly accountId: string;
  readonly deviceId: number;
  readonly secret: string;
}

/** The credential as a well-behaved client sends it. */
export function authorization(credential: Credential): string {
  return formatDeviceCredential(credential);
}

/** One metadata entry; a `-bin` key carries bytes. */
export type Entry = readonly [key: string, value: string | Buffer];

/** Who a call claims to be. */
export type Caller = 'anonymous' | 'fuzz-account' | 'garbage-credential';

/** Stands for the fuzz account's credential in saved inputs, which outlive the account. */
export const FUZZ_CREDENTIAL = '$FUZZ_ACCOUNT_CREDENTIAL';

/** What garbage credentials are made of: the accounts the fuzzer knows. */
export interface Identities {
  readonly self: Credential;
  readonly others: readonly { readonly accountId: string; readonly deviceId: number }[];
}

function printable(rng: Random, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += String.fromCharCode(rng.between(0x20, 0x7e));
  return text;
}

function secretLike(rng: Random): string {
  return rng.bytes(32).toString('base64url');
}

function garbageAuthorization(rng: Random, who: Identities): Entry[] {
  const other = rng.pick(who.others);
  const { self } = who;
  const value = rng.weighted<() => string>([
    [() => printable(rng, rng.length(256)), 4],
    [() => `${other.accountId}.${other.deviceId}:${secretLike(rng)}`, 4],
    [() => `${self.accountId}.${self.deviceId}:${secretLike(rng)}`, 2],
    [() => `${other.accountId}.${self.deviceId}:${self.secret}`, 2],
    [
      () =>
        `${self.accountId}.${rng.pick(['0', '4294967295', '2147483648', '-1', '01', '1e3', ''])}:${self.secret}`,
      2,
    ],
    [() => `${self.accountId}.${self.deviceId}:${self.secret}${rng.pick(['=', ' ', 'A', ',', '\t'])}`, 1],
    [
      () =>
        `${self.accountId}.${self.deviceId}:${self.secret},${other.accountId}.${other.deviceId}:${secretLike(rng)}`,
      1,
    ],
    [() => `Bearer ${secretLike(rng)}`, 1],
    [() => '', 1],
    [() => printable(rng, rng.between(8 * 1024, 20 * 1024)), 1],
    // Up to the 64 KiB header list every HTTP/2 server advertises (SETTINGS_MAX_HEADER_LIST_SIZE).
    [() => 'a'.repeat(rng.between(32 * 1024, 60 * 1024)), 0.3],
  ])();
  // A second credential, its own one, after the garbage: as one value, since HTTP/2 peers (node's
  // included) keep a single value of an `authorization` header, and intermediaries join duplicates so.
  const entries: Entry[] = [
    [
      'authorization',
      rng.chance(0.1) ? `${value}, ${self.accountId}.${self.deviceId}:${self.secret}` : value,
    ],
  ];
  if (rng.chance(0.05)) entries.push(['authorization-bin', rng.bytes(rng.length(512))]);
  return entries;
}

/** Entries of no meaning to the gateway: many of them, long ones, binary ones. */
function clutter(rng: Random): Entry[] {
  return rng.weighted<() => Entry[]>([
    [
      () =>
        Array.from({ length: rng.between(1, 300) }, (_, i): Entry => [
          `x-fuzz-${i}`,
          printable(rng, rng.length(64)),
        ]),
      2,
    ],
    [() => [['x-fuzz-long', printable(rng, rng.between(4 * 1024, 16 * 1024))]], 1],
    [() => [['x-fuzz-bin', rng.bytes(rng.length(4096))]], 1],
    [() => [['user-agent', printable(rng, rng.length(512))]], 1],
  ])();
}

/**
 * Metadata HTTP/2 itself may refuse (past the header list size a server
 * advertises) or that is heavy to carry: sent one call at a time on a
 * connection of their own, so that what they get is the answer to them and
 * not to the calls around them.
 */
export function isHeavy(entries: readonly Entry[]): boolean {
  return entries.length > 60 || entries.some(([, value]) => value.length > 4096);
}

/** The metadata of one call by this caller; the fuzz account's credential is FUZZ_CREDENTIAL until it is sent. */
export function makeMetadata(rng: Random, caller: Caller, who: Identities): Entry[] {
  const entries: Entry[] = [];
  if (caller === 'fuzz-account') entries.push(['authorization', FUZZ_CREDENTIAL]);
  if (caller === 'garbage-credential') entries.push(...garbageAuthorization(rng, who));
  if (rng.chance(0.04)) entries.push(...clutter(rng));
  return entries;
}
