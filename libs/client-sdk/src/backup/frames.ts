import { BackupError } from './backup-error';

/**
 * The plaintext inside a backup is a sequence of records,
 * type (1 byte) | length (4 bytes, big-endian) | UTF-8 JSON, so it can be
 * written and read one record at a time however large the history: one
 * manifest (a JSON object), then history records of whole JSON lines.
 */
export const FrameType = { Manifest: 1, History: 2 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  readonly type: number;
  readonly payload: Buffer;
}

const PREFIX = 5;
const NEWLINE = 0x0a;
/** No record comes near this; a larger length means the contents are not ours. */
const MAX_PAYLOAD = 64 * 1024 * 1024;

export function encodeFrame(type: FrameType, json: string | Buffer): Buffer {
  const payload = typeof json === 'string' ? Buffer.from(json, 'utf8') : json;
  const prefix = Buffer.allocUnsafe(PREFIX);
  prefix.writeUInt8(type, 0);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

/**
 * Cuts a stream of JSON lines, in chunks of any size, into pieces that end
 * at a line break, so every history record holds whole lines.
 */
export async function* wholeLines(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<Buffer> {
  let carry: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const data = carry.length > 0 ? Buffer.concat([carry, bytes]) : bytes;
    const end = data.lastIndexOf(NEWLINE) + 1;
    if (end > 0) yield data.subarray(0, end);
    carry = data.subarray(end);
  }
  // What follows the last line break was never completely written (a crash
  // mid-append, or an append under way as the file is read): left out.
}

function malformed(detail: string): BackupError {
  return new BackupError('MALFORMED', `the backup's contents are unreadable: ${detail}`);
}

/**
 * Splits a byte stream into records. Chunks are joined only once a whole
 * record is there, so a large record costs one copy, not one per chunk.
 */
export async function* decodeFrames(chunks: AsyncIterable<Buffer>): AsyncGenerator<Frame> {
  let pending: Buffer[] = [];
  let available = 0;
  let needed = PREFIX;
  for await (const chunk of chunks) {
    pending.push(chunk);
    available += chunk.length;
    if (available < needed) continue;
    const data = Buffer.concat(pending, available);
    let offset = 0;
    for (;;) {
      if (data.length - offset < PREFIX) {
        needed = PREFIX;
        break;
      }
      const length = data.readUInt32BE(offset + 1);
      if (length > MAX_PAYLOAD) throw malformed(`a record claims ${length} bytes`);
      if (data.length - offset < PREFIX + length) {
        needed = PREFIX + length;
        break;
      }
      yield { type: data[offset] ?? 0, payload: data.subarray(offset + PREFIX, offset + PREFIX + length) };
      offset += PREFIX + length;
    }
    const rest = data.subarray(offset);
    pending = rest.length > 0 ? [rest] : [];
    available = rest.length;
  }
  if (available > 0) throw malformed('it ends inside a record');
}
