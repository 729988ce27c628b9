import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Envelope, EnvelopeType } from './generated/sotto/common/v1/envelope';
import { ConnectResponse, MessagingServiceService } from './generated/sotto/gateway/v1/gateway';
import { RelayServiceService, SendBatchRequest } from './generated/sotto/relay/v1/relay';
import { SHARED_WRITER_MAX_KEPT_BYTES, encodeToBuffer } from './wire-encoding';

function envelope(contentBytes: number, guid = '0190a0a0-0000-7000-8000-000000000001'): Envelope {
  return {
    guid,
    type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
    sourceAccountId: 'b3c1f0de-0000-4000-8000-000000000001',
    sourceDeviceId: 1,
    destinationAccountId: 'b3c1f0de-0000-4000-8000-000000000002',
    destinationDeviceId: 2,
    clientTimestampMs: '1764547200000',
    serverTimestampMs: '1764547200001',
    ephemeral: false,
    content: randomBytes(contentBytes),
  };
}

/** What a writer of its own gives: the bytes the shared writer must match. */
const alone = (message: Envelope): Buffer => Buffer.from(Envelope.encode(message).finish());

describe('encodeToBuffer', () => {
  it('gives the bytes a fresh writer gives, encode after encode, large then small', () => {
    for (const size of [5000, 200, 0, 70_000, 1, 200]) {
      const message = envelope(size);
      expect(encodeToBuffer(Envelope, message)).toEqual(alone(message));
      expect(Envelope.decode(encodeToBuffer(Envelope, message))).toEqual({
        ...message,
        content: expect.anything(),
      });
    }
  });

  it('gives each encode bytes of its own, which later encodes do not touch', () => {
    const first = envelope(300);
    const encoded = encodeToBuffer(Envelope, first);
    const copy = Buffer.from(encoded);
    for (let i = 0; i < 10; i++) encodeToBuffer(Envelope, envelope(300));
    expect(encoded).toEqual(copy);
    expect(encoded.buffer.byteLength).toBe(encoded.byteLength);
  });

  it('starts afresh after an encode that failed half-way', () => {
    const bad = { ...envelope(100), clientTimestampMs: 'not a number' };
    expect(() => encodeToBuffer(Envelope, bad)).toThrow();
    // The failed encode had written the envelope's first fields; none of them leak into the next.
    const good = envelope(100);
    expect(encodeToBuffer(Envelope, good)).toEqual(alone(good));
  });

  it('encodes a message past the size it keeps, and the ones after it', () => {
    const large = envelope(SHARED_WRITER_MAX_KEPT_BYTES + 10);
    const encoded = encodeToBuffer(Envelope, large);
    expect(encoded).toEqual(alone(large));
    const small = envelope(10);
    expect(encodeToBuffer(Envelope, small)).toEqual(alone(small));
    expect(Envelope.decode(encoded).content).toEqual(large.content);
  });

  it("is what the generated gRPC service definitions serialize with, on the client's side and the server's", () => {
    const response: ConnectResponse = { envelope: envelope(200) };
    const serialized = MessagingServiceService.connect.responseSerialize(response);
    expect(serialized).toEqual(Buffer.from(ConnectResponse.encode(response).finish()));
    expect(MessagingServiceService.connect.responseSerialize.toString()).toContain('encodeToBuffer');

    const request: SendBatchRequest = { sends: [] };
    expect(RelayServiceService.sendBatch.requestSerialize(request)).toEqual(
      Buffer.from(SendBatchRequest.encode(request).finish()),
    );
    // Every serializer of every generated service, not only these two.
    const generated = join(__dirname, 'generated');
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
        entry.isDirectory() ? files(join(dir, entry.name)) : [join(dir, entry.name)],
      );
    const services = files(generated).filter((file) =>
      readFileSync(file, 'utf8').includes('Serialize: (value'),
    );
    expect(services.length).toBeGreaterThanOrEqual(8);
    for (const file of services) {
      const text = readFileSync(file, 'utf8');
      expect(text).not.toMatch(/Serialize: \(value: \w+\): Buffer =>\s*Buffer\.from/);
      expect(text).toMatch(/Serialize: \(value: \w+\): Buffer =>\s*encodeToBuffer\(/);
    }
  });
});
