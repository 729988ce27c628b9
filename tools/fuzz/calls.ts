/**
 * One fuzzed call to one gateway method: who it claims to be, its metadata,
 * and its request messages (several for a method that streams requests),
 * perhaps with a frame grpc-js would never send.
 */
import { makeMetadata, type Caller, type Identities } from './metadata';
import type { Random } from './random';
import type { GatewayMethod } from './schema';
import type { CallInput, RawFrame } from './transport';
import { BODY_KINDS, BODY_WEIGHTS, makeBody, type BodyKind, type Knowledge } from './wire';

/** What a call was, for the statistics: the body kind of its decisive message, or its broken frame. */
export type CallKind = BodyKind | RawFrame | 'oversized' | 'empty-stream';

export interface FuzzCall {
  readonly caller: Caller;
  readonly kind: CallKind;
  readonly input: CallInput;
}

const CALLERS: readonly (readonly [Caller, number])[] = [
  ['anonymous', 25],
  ['fuzz-account', 50],
  ['garbage-credential', 25],
];

const FRAMES: readonly (readonly ['ordinary' | 'oversized' | RawFrame, number])[] = [
  ['ordinary', 97.5],
  ['truncated-frame', 1.5],
  ['lying-frame-length', 0.6],
  ['oversized', 0.4],
];

const BODIES = BODY_KINDS.map((kind) => [kind, BODY_WEIGHTS[kind]] as const);

export function makeCall(
  rng: Random,
  method: GatewayMethod,
  knowledge: Knowledge,
  who: Identities,
  maxReceiveBytes: number,
): FuzzCall {
  const caller = rng.weighted(CALLERS);
  const metadata = makeMetadata(rng, caller, who);
  const frame = rng.weighted(FRAMES);
  let kind: CallKind = rng.weighted(BODIES);
  const messages: Buffer[] = [];
  if (method.requestStream) {
    const count = rng.weighted<number>([
      [0, 1],
      [1, 4],
      [2, 4],
      [3, 3],
      [6, 2],
      [rng.between(10, 60), 1],
    ]);
    // Requests streamed one after another: each of its own kind, the first one counted.
    for (let i = 0; i < count; i++) {
      const messageKind: BodyKind =
        i === 0 ? kind : rng.weighted(BODIES.filter(([other]) => other !== 'huge'));
      messages.push(makeBody(rng, method.request, messageKind, knowledge, maxReceiveBytes));
    }
    if (count === 0) kind = 'empty-stream';
  } else {
    messages.push(makeBody(rng, method.request, kind, knowledge, maxReceiveBytes));
  }
  if (frame === 'oversized') {
    // Past the server's limit by up to 64 KiB: it must refuse the message, not hold it.
    const size = maxReceiveBytes + rng.between(1, 65536);
    messages[Math.max(0, messages.length - 1)] = rng.bytes(size);
    return { caller, kind: 'oversized', input: { metadata, messages } };
  }
  if (frame !== 'ordinary') {
    if (messages.length === 0) messages.push(makeBody(rng, method.request, 'ordinary', knowledge));
    return { caller, kind: frame, input: { metadata, messages, raw: frame } };
  }
  return { caller, kind, input: { metadata, messages } };
}
