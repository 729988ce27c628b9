import { Readable } from 'node:stream';
import { decodeFrames, encodeFrame, FrameType, wholeLines } from './frames';

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** The data as a stream of chunks of the given size, as a file or a socket would deliver it. */
function chunksOf(data: Buffer, size: number): AsyncIterable<Buffer> {
  const count = Math.ceil(data.length / size);
  return Readable.from(
    Array.from({ length: count }, (_, index) => data.subarray(index * size, (index + 1) * size)),
  );
}

describe('records', () => {
  const jsonl = Buffer.from('{"kind":"a","text":"é 🚆"}\n{"kind":"b"}\n{"kind":"c","text":"x"}\n');

  it.each([1, 2, 7, 1000])('cut into whole lines whatever the chunk size (%i bytes)', async (size) => {
    const pieces = await collect(wholeLines(chunksOf(jsonl, size)));
    for (const piece of pieces) expect(piece.at(-1)).toBe(0x0a);
    expect(Buffer.concat(pieces).equals(jsonl)).toBe(true);
  });

  it('leave out a last line cut short of its line break, and yield nothing for nothing', async () => {
    const cut = Buffer.from('{"kind":"a"}\n{"kind":"b"');
    expect(Buffer.concat(await collect(wholeLines(chunksOf(cut, 5)))).toString()).toBe('{"kind":"a"}\n');
    expect(await collect(wholeLines(chunksOf(Buffer.alloc(0), 5)))).toEqual([]);
  });

  it.each([1, 3, 64])('split back into the records written, arriving %i bytes at a time', async (size) => {
    const stream = Buffer.concat([
      encodeFrame(FrameType.Manifest, '{"account":{}}'),
      encodeFrame(FrameType.History, jsonl),
      encodeFrame(FrameType.History, Buffer.alloc(0)),
    ]);
    const frames = await collect(decodeFrames(chunksOf(stream, size)));
    expect(frames.map((frame) => [frame.type, frame.payload.toString()])).toEqual([
      [FrameType.Manifest, '{"account":{}}'],
      [FrameType.History, jsonl.toString()],
      [FrameType.History, ''],
    ]);
  });

  it('refuse a stream that ends inside a record, or claims an absurd length', async () => {
    const frame = encodeFrame(FrameType.History, jsonl);
    await expect(collect(decodeFrames(chunksOf(frame.subarray(0, -1), 4)))).rejects.toMatchObject({
      code: 'MALFORMED',
    });
    const absurd = Buffer.from([FrameType.History, 0xff, 0xff, 0xff, 0xff]);
    await expect(collect(decodeFrames(chunksOf(absurd, 5)))).rejects.toMatchObject({ code: 'MALFORMED' });
  });
});
