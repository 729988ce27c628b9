import { BinaryWriter } from '@bufbuild/protobuf/wire';

/** A generated message codec: it can encode into a writer it is given. */
export interface MessageEncoder<T> {
  encode(message: T, writer?: BinaryWriter): BinaryWriter;
}

/** A message this size or larger leaves its grown buffer to the collector rather than the shared writer. */
export const SHARED_WRITER_MAX_KEPT_BYTES = 1024 * 1024;

let shared = new BinaryWriter();

/**
 * `codec.encode(message)` as a Buffer, written through one writer shared by
 * every encode in the process. A fresh writer starts at 128 bytes and doubles
 * as the message grows, and `Buffer.from(finish())` copies the result again:
 * a 340-byte envelope on a Connect stream cost five allocations and four
 * copies. The shared writer has long since grown, so an encode costs the one
 * copy `finish()` makes, and the Buffer is a view of that copy.
 *
 * Encodes run to completion on one thread, so they never interleave. One that
 * throws half-way (a field out of range) leaves the writer mid-message: it is
 * dropped and the next encode starts on a fresh one.
 */
export function encodeToBuffer<T>(codec: MessageEncoder<T>, message: T): Buffer {
  let bytes: Uint8Array;
  try {
    bytes = codec.encode(message, shared).finish();
  } catch (failure) {
    shared = new BinaryWriter();
    throw failure;
  }
  if (bytes.byteLength >= SHARED_WRITER_MAX_KEPT_BYTES) shared = new BinaryWriter();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
