import { BinaryReader } from '@bufbuild/protobuf/wire';
import { SendRequest } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { formatTable } from './report';
import { Random } from './random';
import { gatewayMethods } from './schema';
import { BODY_KINDS, encode, hugeBody, INVALID_UTF8, makeBody, NO_KNOWLEDGE, varint, WIRE } from './wire';

const sendRequest = () => {
  const method = gatewayMethods().find((candidate) => candidate.label === 'MessagingService/Send');
  if (method === undefined) throw new Error('no Send in the contract');
  return method.request;
};

describe('the wire format the fuzzer writes', () => {
  it('writes varints as protobuf does: negative numbers as 10 bytes of two’s complement', () => {
    expect(varint(0n)).toEqual(Buffer.from([0]));
    expect(varint(300n)).toEqual(Buffer.from([0xac, 0x02]));
    expect(varint(-1n)).toEqual(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    expect(new BinaryReader(varint(2n ** 64n - 1n)).uint64()).toBe(2n ** 64n - 1n);
  });

  it('encodes fields that the generated codecs read back', () => {
    const body = encode([
      { field: 1, wireType: WIRE.len, value: Buffer.from('someone') },
      { field: 2, wireType: WIRE.varint, value: varint(42n) },
    ]);
    expect(SendRequest.decode(body)).toMatchObject({
      destinationAccountId: 'someone',
      clientTimestampMs: '42',
    });
  });

  it('lets a length-delimited field claim more bytes than it has', () => {
    const body = encode([{ field: 1, wireType: WIRE.len, value: Buffer.from('ab'), claimedLength: 17n }]);
    expect(() => SendRequest.decode(body)).toThrow();
  });

  it('knows no UTF-8 decoder may accept its invalid sequences', () => {
    const strict = new TextDecoder('utf-8', { fatal: true });
    for (const bytes of INVALID_UTF8) expect(() => strict.decode(bytes)).toThrow();
  });
});

describe('request bodies', () => {
  it('are the same for the same seed, so a run can be repeated', () => {
    const shape = sendRequest();
    for (const kind of BODY_KINDS) {
      const once = makeBody(new Random(7), shape, kind, NO_KNOWLEDGE);
      const again = makeBody(new Random(7), shape, kind, NO_KNOWLEDGE);
      expect([kind, once.equals(again)]).toEqual([kind, true]);
    }
  });

  it('makes huge bodies of about the size asked for, within the server’s limit', () => {
    const rng = new Random(1);
    for (let i = 0; i < 20; i++) {
      const size = rng.between(1024 * 1024, 4 * 1024 * 1024 - 1024);
      const body = hugeBody(rng, sendRequest(), NO_KNOWLEDGE, size);
      expect(body.length).toBeGreaterThan(size / 2);
      expect(body.length).toBeLessThan(size + 1024);
    }
  });

  it('builds ordinary Send requests the generated codec decodes', () => {
    const rng = new Random(3);
    for (let i = 0; i < 50; i++) {
      const body = makeBody(rng, sendRequest(), 'ordinary', NO_KNOWLEDGE);
      expect(() => SendRequest.decode(body)).not.toThrow();
    }
  });
});

describe('the gateway methods fuzzed', () => {
  it('are every method of the public API, each with its request fields', () => {
    const methods = gatewayMethods();
    expect(methods.map((method) => method.label)).toEqual(
      expect.arrayContaining([
        'AccountService/Register',
        'MessagingService/Connect',
        'BackupService/UploadBackup',
      ]),
    );
    const send = methods.find((method) => method.label === 'MessagingService/Send');
    expect(send?.request.fields.map((field) => field.name)).toEqual(
      expect.arrayContaining(['destinationAccountId', 'envelopes']),
    );
    expect(methods.find((method) => method.label === 'MessagingService/Connect')).toMatchObject({
      requestStream: true,
      responseStream: true,
    });
  });
});

describe('the report', () => {
  it('has a column per status code seen, and a total row', () => {
    const table = formatTable([
      { method: 'A/One', requests: 3, codes: { OK: 1, INVALID_ARGUMENT: 2 }, byKind: {} },
      { method: 'A/Two', requests: 2, codes: { UNAUTHENTICATED: 2 }, byKind: {} },
    ]);
    const lines = table.split('\n');
    expect(lines[0]?.split(/\s+/)).toEqual([
      'method',
      'requests',
      'OK',
      'INVALID_ARGUMENT',
      'UNAUTHENTICATED',
    ]);
    expect(lines[lines.length - 1]?.split(/\s+/)).toEqual(['total', '5', '1', '2', '2']);
  });
});
