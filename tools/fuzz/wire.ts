/**
 * Request bodies for the fuzzer, written at the level of the protobuf wire
 * format so that they can be wrong in every way the format allows: random
 * bytes, messages built from the contract's field shapes with ordinary,
 * extreme or hostile values, and those messages broken (truncated, bits
 * flipped, fields of the wrong wire type, invalid UTF-8, lengths that lie,
 * groups nested too deep, fields huge or repeated past reason).
 */
import type { Random } from './random';
import type { FieldShape, MessageShape, ScalarKind } from './schema';

export const WIRE = { varint: 0, fixed64: 1, len: 2, startGroup: 3, endGroup: 4, fixed32: 5 } as const;

/** The largest message the servers accept by default (grpc-js's 4 MiB); bodies stay under it unless oversized on purpose. */
export const DEFAULT_MAX_RECEIVE_BYTES = 4 * 1024 * 1024;

/** A varint of the low 64 bits of `value`: a negative number is its two's complement, 10 bytes long. */
export function varint(value: bigint): Buffer {
  let rest = BigInt.asUintN(64, value);
  const bytes: number[] = [];
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

export function tag(field: number, wireType: number): Buffer {
  return varint((BigInt(field) << 3n) | BigInt(wireType));
}

/** One field as it goes on the wire; a length-delimited one may claim a length it does not have. */
export interface WireField {
  readonly field: number;
  readonly wireType: number;
  readonly value: Buffer;
  readonly claimedLength?: bigint;
}

export function encode(fields: readonly WireField[]): Buffer {
  return Buffer.concat(
    fields.flatMap((field) =>
      field.wireType === WIRE.len
        ? [
            tag(field.field, field.wireType),
            varint(field.claimedLength ?? BigInt(field.value.length)),
            field.value,
          ]
        : [tag(field.field, field.wireType), field.value],
    ),
  );
}

/**
 * What the fuzzer knows of other accounts (and of its own), by the field
 * names the values fit: `accountId` fits `account_id`, `destination_account_id`
 * and `requester_account_id` alike. Hostile requests are made of these.
 */
export interface Knowledge {
  readonly strings: Readonly<Record<string, readonly string[]>>;
  readonly bytes: Readonly<Record<string, readonly Buffer[]>>;
  readonly numbers: Readonly<Record<string, readonly bigint[]>>;
}

export const NO_KNOWLEDGE: Knowledge = { strings: {}, bytes: {}, numbers: {} };

function known<T>(pool: Readonly<Record<string, readonly T[]>>, fieldName: string): readonly T[] {
  return Object.entries(pool).flatMap(([key, values]) =>
    fieldName === key || fieldName.endsWith(key.charAt(0).toUpperCase() + key.slice(1)) ? values : [],
  );
}

/** 0, 2^31 − 1, 2^32 − 1, 2^63 − 1, 2^64 − 1, negative numbers as 10-byte varints, and their neighbours. */
export const EXTREME_NUMBERS: readonly bigint[] = [
  0n,
  1n,
  0x7fn,
  0x80n,
  2n ** 31n - 1n,
  2n ** 31n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
  -1n,
  -(2n ** 31n),
  -(2n ** 63n),
];

/** Numbers that mean something to a field of this name, beyond the extremes. */
function hostileNumbers(name: string): readonly bigint[] {
  if (/deviceId$/i.test(name)) return [0n, 1n, 2n, 6n, 7n, 2n ** 31n - 1n, 2n ** 32n - 1n];
  if (/offset$/i.test(name)) return [0n, -1n, -(2n ** 32n), 2n ** 63n - 1n, 2n ** 64n - 1n];
  if (/keyId$/i.test(name)) return [0n, 1n, 0xffffffn, 2n ** 32n - 1n];
  if (/Ms$/.test(name)) return [0n, -1n, 2n ** 53n, 2n ** 63n - 1n];
  if (/^(size|version)$/.test(name)) return [0n, 1n, 2n ** 31n, 2n ** 63n - 1n, 2n ** 64n - 1n, -1n];
  return [];
}

/** Sequences no UTF-8 decoder may accept: stray continuation bytes, overlong forms, surrogates, past U+10FFFF. */
export const INVALID_UTF8: readonly Buffer[] = [
  [0x80],
  [0xbf],
  [0xc0, 0xaf],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0xc3],
  [0xe2, 0x82],
].map((bytes) => Buffer.from(bytes));

const NASTY_STRINGS: readonly string[] = [
  '',
  ' ',
  '\u0000',
  '\u0000admin',
  "' OR 1=1 --",
  '"; DROP TABLE accounts; --',
  '../../../../etc/passwd',
  '%00%ff',
  '${jndi:ldap://127.0.0.1/x}',
  '{{7*7}}',
  '\uFEFF',
  '\uFFFD',
  '\u202Eevil',
  'ａｄｍｉｎ',
  '😀'.repeat(64),
  'a'.repeat(1024),
  '00000000-0000-0000-0000-000000000000',
  'ffffffff-ffff-ffff-ffff-ffffffffffff',
  '0190a3f1-6a2b-7c3d-8e4f-5a6b7c8d9e0f\n',
  '__proto__',
  'constructor',
];

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:';

function randomText(rng: Random, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) {
    text += rng.chance(0.9)
      ? ALPHABET.charAt(rng.below(ALPHABET.length))
      : String.fromCodePoint(
          rng.pick([0x00, 0x7f, 0xe9, 0x4e2d, 0xfffd, 0x1f600, rng.between(0x20, 0xd7ff)]),
        );
  }
  return text;
}

function uuidLike(rng: Random): string {
  const hex = rng.bytes(16).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${hex.slice(13, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** How values are chosen while a message is built. */
export type ValueMode = 'ordinary' | 'hostile' | 'extreme';

/** Ways a built message is made wrong on the way, each field by its own chance. */
interface Faults {
  /** Chance that a field is written with another wire type than its own. */
  readonly wrongWireType?: number;
  /** Chance that a string field holds invalid UTF-8. */
  readonly invalidUtf8?: number;
}

interface Build {
  readonly rng: Random;
  readonly knowledge: Knowledge;
  readonly mode: ValueMode;
  readonly faults: Faults;
  /** Faults actually made, so a caller asking for one can tell whether the message had a place for it. */
  made: number;
}

function numberValue(build: Build, field: FieldShape): bigint {
  const { rng } = build;
  const pool = [...known(build.knowledge.numbers, field.name), ...hostileNumbers(field.name)];
  switch (build.mode) {
    case 'extreme':
      return rng.pick(EXTREME_NUMBERS);
    case 'hostile':
      return pool.length > 0 && rng.chance(0.8) ? rng.pick(pool) : rng.pick(EXTREME_NUMBERS);
    case 'ordinary':
      if (pool.length > 0 && rng.chance(0.3)) return rng.pick(pool);
      if (field.kind === 'bool') return BigInt(rng.below(2));
      if (field.kind === 'enum') return BigInt(rng.below(6));
      return BigInt(rng.chance(0.8) ? rng.below(200) : rng.uint32());
  }
}

function stringValue(build: Build, field: FieldShape): Buffer {
  const { rng } = build;
  const faults = build.faults.invalidUtf8 ?? 0;
  if (faults > 0 && rng.chance(faults)) {
    build.made++;
    const prefix = randomText(rng, rng.below(8));
    return Buffer.concat([
      Buffer.from(prefix),
      rng.pick(INVALID_UTF8),
      Buffer.from(randomText(rng, rng.below(4))),
    ]);
  }
  const pool = known(build.knowledge.strings, field.name);
  if (build.mode === 'hostile' && pool.length > 0 && rng.chance(0.8)) return Buffer.from(rng.pick(pool));
  if (build.mode === 'extreme') return Buffer.from(rng.pick(NASTY_STRINGS));
  if (pool.length > 0 && rng.chance(0.3)) return Buffer.from(rng.pick(pool));
  return Buffer.from(
    rng.weighted<() => string>([
      [() => randomText(rng, rng.length(64)), 5],
      [() => uuidLike(rng), 2],
      [() => rng.pick(NASTY_STRINGS), 2],
      [() => rng.bytes(32).toString('base64url').slice(0, 43), 1],
    ])(),
  );
}

function bytesValue(build: Build, field: FieldShape): Buffer {
  const { rng } = build;
  const pool = known(build.knowledge.bytes, field.name);
  if (build.mode !== 'extreme' && pool.length > 0 && rng.chance(build.mode === 'hostile' ? 0.8 : 0.3)) {
    return rng.pick(pool);
  }
  const length =
    build.mode === 'extreme'
      ? rng.pick([0, 1, 31, 32, 33, 1569, 65536])
      : rng.pick([0, 1, 32, 33, 64, rng.length(2048)]);
  return rng.bytes(length);
}

function fixedBytes(rng: Random, width: 4 | 8, value: bigint | undefined): Buffer {
  const bytes = Buffer.alloc(width);
  if (value === undefined) return rng.bytes(width);
  if (width === 4) bytes.writeUInt32LE(Number(BigInt.asUintN(32, value)));
  else bytes.writeBigUInt64LE(BigInt.asUintN(64, value));
  return bytes;
}

const VARINT_KINDS: ReadonlySet<ScalarKind | 'message'> = new Set([
  'bool',
  'enum',
  'int32',
  'int64',
  'uint32',
  'uint64',
  'sint32',
  'sint64',
]);

function naturalWireType(kind: FieldShape['kind']): number {
  if (VARINT_KINDS.has(kind)) return WIRE.varint;
  if (kind === 'fixed64' || kind === 'sfixed64' || kind === 'double') return WIRE.fixed64;
  if (kind === 'fixed32' || kind === 'sfixed32' || kind === 'float') return WIRE.fixed32;
  return WIRE.len;
}

/** A random value of some wire type: what a field of the wrong type carries. */
function anyOfWireType(rng: Random, wireType: number): WireField['value'] {
  switch (wireType) {
    case WIRE.varint:
      return varint(rng.pick(EXTREME_NUMBERS));
    case WIRE.fixed64:
      return rng.bytes(8);
    case WIRE.fixed32:
      return rng.bytes(4);
    default:
      return rng.bytes(rng.length(64));
  }
}

function zigzag(value: bigint): bigint {
  return value >= 0n ? value * 2n : -value * 2n - 1n;
}

function fieldValue(build: Build, field: FieldShape, depth: number): WireField {
  const { rng } = build;
  const natural = naturalWireType(field.kind);
  const wrong = build.faults.wrongWireType ?? 0;
  if (wrong > 0 && rng.chance(wrong)) {
    build.made++;
    const wireType = rng.pick(
      [WIRE.varint, WIRE.fixed64, WIRE.len, WIRE.fixed32].filter((type) => type !== natural),
    );
    return { field: field.number, wireType, value: anyOfWireType(rng, wireType) };
  }
  switch (field.kind) {
    case 'string':
      return { field: field.number, wireType: WIRE.len, value: stringValue(build, field) };
    case 'bytes':
      return { field: field.number, wireType: WIRE.len, value: bytesValue(build, field) };
    case 'message': {
      const pool = known(build.knowledge.bytes, field.name);
      if (build.mode !== 'extreme' && pool.length > 0 && rng.chance(build.mode === 'hostile' ? 0.7 : 0.2)) {
        return { field: field.number, wireType: WIRE.len, value: rng.pick(pool) };
      }
      const inner = field.message && depth < 6 ? messageFields(build, field.message, depth + 1) : [];
      return { field: field.number, wireType: WIRE.len, value: encode(inner) };
    }
    case 'sint32':
    case 'sint64':
      return { field: field.number, wireType: WIRE.varint, value: varint(zigzag(numberValue(build, field))) };
    case 'fixed32':
    case 'sfixed32':
    case 'float':
      return {
        field: field.number,
        wireType: WIRE.fixed32,
        value: fixedBytes(rng, 4, build.mode === 'ordinary' ? undefined : numberValue(build, field)),
      };
    case 'fixed64':
    case 'sfixed64':
    case 'double':
      return {
        field: field.number,
        wireType: WIRE.fixed64,
        value: fixedBytes(rng, 8, build.mode === 'ordinary' ? undefined : numberValue(build, field)),
      };
    default:
      return { field: field.number, wireType: WIRE.varint, value: varint(numberValue(build, field)) };
  }
}

function messageFields(build: Build, shape: MessageShape, depth: number): WireField[] {
  const { rng } = build;
  const fields: WireField[] = [];
  for (const field of shape.fields) {
    if (!rng.chance(build.mode === 'ordinary' ? 0.7 : 0.9)) continue;
    if (field.repeated && naturalWireType(field.kind) !== WIRE.len && rng.chance(0.5)) {
      // Packed, as proto3 writes repeated numbers.
      const count = rng.pick([0, 1, 2, 5, rng.between(6, 40)]);
      const values = Array.from({ length: count }, () => fieldValue(build, field, depth).value);
      fields.push({ field: field.number, wireType: WIRE.len, value: Buffer.concat(values) });
      continue;
    }
    // A field that is not repeated is sometimes sent twice: the last one wins.
    const count = field.repeated ? rng.pick([0, 1, 1, 2, 3, rng.between(4, 20)]) : rng.chance(0.03) ? 2 : 1;
    for (let i = 0; i < count; i++) fields.push(fieldValue(build, field, depth));
  }
  if (rng.chance(0.1)) fields.reverse();
  return fields;
}

/** A message of this shape; every string, number and nested message chosen by `mode`. */
export function buildMessage(
  rng: Random,
  shape: MessageShape,
  knowledge: Knowledge,
  mode: ValueMode = 'ordinary',
): Buffer {
  return encode(messageFields({ rng, knowledge, mode, faults: {}, made: 0 }, shape, 0));
}

/** Fields in which a message of this shape can hold a string, at any depth. */
export function holdsStrings(shape: MessageShape, seen: ReadonlySet<string> = new Set()): boolean {
  if (seen.has(shape.name)) return false;
  const inner = new Set([...seen, shape.name]);
  return shape.fields.some(
    (field) => field.kind === 'string' || (field.message !== undefined && holdsStrings(field.message, inner)),
  );
}

/** With at least one fault of the kind asked for, if the shape has a place for one (tries a few times). */
function buildFaulty(
  rng: Random,
  shape: MessageShape,
  knowledge: Knowledge,
  faults: Faults,
): Buffer | undefined {
  for (let attempt = 0; attempt < 8; attempt++) {
    const build: Build = { rng, knowledge, mode: 'ordinary', faults, made: 0 };
    const fields = messageFields(build, shape, 0);
    if (build.made > 0) return encode(fields);
  }
  return undefined;
}

/** Ways the wire format itself can be broken, after some honest fields. */
function malformed(rng: Random, shape: MessageShape, knowledge: Knowledge): Buffer {
  const honest = rng.chance(0.5) ? buildMessage(rng, shape, knowledge) : Buffer.alloc(0);
  const field = rng.between(1, 20);
  const broken = rng.weighted<() => Buffer>([
    [() => Buffer.concat([tag(0, rng.below(6)), rng.bytes(rng.below(8))]), 1],
    [() => tag(field, WIRE.endGroup), 1],
    [() => tag(field, WIRE.startGroup), 1],
    [
      () =>
        Buffer.concat([...Array.from({ length: rng.between(90, 5000) }, () => tag(field, WIRE.startGroup))]),
      1,
    ],
    [() => Buffer.concat([tag(field, rng.pick([6, 7])), rng.bytes(4)]), 1],
    [
      () =>
        Buffer.concat([tag(field, WIRE.varint), Buffer.alloc(rng.between(11, 40), 0xff), Buffer.from([1])]),
      1,
    ],
    [
      () =>
        Buffer.concat([
          tag(field, WIRE.varint),
          Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
        ]),
      1,
    ],
    [
      () =>
        encode([
          {
            field,
            wireType: WIRE.len,
            value: rng.bytes(rng.below(16)),
            claimedLength: rng.pick([17n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 64n - 1n]),
          },
        ]),
      2,
    ],
    [() => Buffer.concat([Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), rng.bytes(4)]), 1],
    [() => Buffer.concat([tag(2 ** 29 - 1, WIRE.varint), varint(1n)]), 1],
    [() => Buffer.concat([varint(2n ** 32n + 8n), varint(1n)]), 1],
    [() => Buffer.from([0x0a]), 1],
  ])();
  return Buffer.concat(rng.chance(0.8) ? [honest, broken] : [broken, honest]);
}

/** Fields the message does not have, of every wire type and with field numbers up to 2^29 − 1. */
function unknownFields(rng: Random, shape: MessageShape, knowledge: Knowledge): Buffer {
  const used = new Set(shape.fields.map((field) => field.number));
  const extra: WireField[] = [];
  for (let i = rng.between(1, 30); i > 0; i--) {
    let field = rng.pick([rng.between(1, 100), rng.between(1, 2 ** 29 - 1), 19000, 2 ** 29 - 1]);
    if (used.has(field)) field += 1000;
    const wireType = rng.pick([WIRE.varint, WIRE.fixed64, WIRE.len, WIRE.fixed32]);
    extra.push({ field, wireType, value: anyOfWireType(rng, wireType) });
  }
  return Buffer.concat([buildMessage(rng, shape, knowledge), encode(extra)]);
}

/** `piece` repeated until the body is about `size` bytes. */
function repeatTo(piece: Buffer, size: number): Buffer {
  const count = Math.max(1, Math.floor(size / Math.max(1, piece.length)));
  const out = Buffer.allocUnsafe(count * piece.length);
  for (let i = 0; i < count; i++) piece.copy(out, i * piece.length);
  return out;
}

/** Every path to a field of these kinds, nested ones included, as the chain of fields down to it. */
function fieldPaths(shape: MessageShape, accept: (field: FieldShape) => boolean, depth = 0): FieldShape[][] {
  if (depth > 4) return [];
  return shape.fields.flatMap((field) => [
    ...(accept(field) ? [[field]] : []),
    ...(field.message && !field.repeated
      ? fieldPaths(field.message, accept, depth + 1).map((path) => [field, ...path])
      : []),
  ]);
}

/** Wraps `inner` (the encoded innermost field) in the messages of `path` above it. */
function nest(path: readonly FieldShape[], inner: Buffer): Buffer {
  return path
    .slice(0, -1)
    .reduceRight((body, field) => encode([{ field: field.number, wireType: WIRE.len, value: body }]), inner);
}

/**
 * A body of about `size` bytes: a huge string or bytes field, a repeated
 * field with a great many elements, or (for a message with neither) a huge
 * field the message does not have.
 */
export function hugeBody(rng: Random, shape: MessageShape, knowledge: Knowledge, size: number): Buffer {
  const paths = fieldPaths(
    shape,
    (field) => field.repeated || field.kind === 'string' || field.kind === 'bytes',
  );
  if (paths.length === 0) {
    return encode([{ field: rng.between(1, 1000), wireType: WIRE.len, value: rng.bytes(size) }]);
  }
  const path = rng.pick(paths);
  const field = path[path.length - 1];
  if (field === undefined) throw new Error('empty field path');
  let inner: Buffer;
  if (field.repeated) {
    const build: Build = {
      rng,
      knowledge,
      mode: rng.pick(['ordinary', 'hostile'] as const),
      faults: {},
      made: 0,
    };
    inner = repeatTo(encode([fieldValue(build, field, 0)]), size);
  } else {
    const character = rng.pick(['a', '0', 'é', '中', '😀']);
    const value =
      field.kind === 'string'
        ? Buffer.from(character.repeat(Math.floor(size / Buffer.byteLength(character))))
        : rng.bytes(size);
    inner = encode([{ field: field.number, wireType: WIRE.len, value }]);
  }
  return nest(path, inner);
}

/** How a request body is made. */
export const BODY_KINDS = [
  'random-bytes',
  'ordinary',
  'hostile',
  'extreme-numbers',
  'wrong-wire-type',
  'truncated',
  'bit-flips',
  'invalid-utf8',
  'malformed-structure',
  'unknown-fields',
  'large',
  'huge',
] as const;
export type BodyKind = (typeof BODY_KINDS)[number];

/** How often each kind is chosen: mostly cheap bodies, huge ones rarely (each is megabytes). */
export const BODY_WEIGHTS: Readonly<Record<BodyKind, number>> = {
  'random-bytes': 14,
  ordinary: 14,
  hostile: 18,
  'extreme-numbers': 7,
  'wrong-wire-type': 9,
  truncated: 7,
  'bit-flips': 7,
  'invalid-utf8': 7,
  'malformed-structure': 7,
  'unknown-fields': 4,
  large: 2.5,
  huge: 0.5,
};

/** One request body of this kind for a message of this shape, under `maxBytes`. */
export function makeBody(
  rng: Random,
  shape: MessageShape,
  kind: BodyKind,
  knowledge: Knowledge,
  maxBytes = DEFAULT_MAX_RECEIVE_BYTES,
): Buffer {
  switch (kind) {
    case 'random-bytes':
      return rng.bytes(rng.chance(0.02) ? rng.between(4096, 65536) : rng.length(1024));
    case 'ordinary':
      return buildMessage(rng, shape, knowledge, 'ordinary');
    case 'hostile':
      return buildMessage(rng, shape, knowledge, 'hostile');
    case 'extreme-numbers':
      return buildMessage(rng, shape, knowledge, 'extreme');
    case 'wrong-wire-type':
      return (
        buildFaulty(rng, shape, knowledge, { wrongWireType: 0.3 }) ?? unknownFields(rng, shape, knowledge)
      );
    case 'invalid-utf8':
      return buildFaulty(rng, shape, knowledge, { invalidUtf8: 0.5 }) ?? malformed(rng, shape, knowledge);
    case 'truncated': {
      const whole = buildMessage(rng, shape, knowledge, rng.pick(['ordinary', 'hostile'] as const));
      return whole.length > 1 ? whole.subarray(0, rng.below(whole.length)) : Buffer.from([0x0a, 0x05]);
    }
    case 'bit-flips': {
      const body = Buffer.from(buildMessage(rng, shape, knowledge, 'ordinary'));
      if (body.length === 0) return rng.bytes(rng.between(1, 8));
      for (let flips = rng.between(1, 8); flips > 0; flips--) {
        const at = rng.below(body.length);
        body[at] = (body[at] ?? 0) ^ (1 << rng.below(8));
      }
      return body;
    }
    case 'malformed-structure':
      return malformed(rng, shape, knowledge);
    case 'unknown-fields':
      return unknownFields(rng, shape, knowledge);
    case 'large':
      return hugeBody(rng, shape, knowledge, rng.between(16 * 1024, 512 * 1024));
    case 'huge':
      return hugeBody(rng, shape, knowledge, rng.between(1024 * 1024, maxBytes - 1024));
  }
}
