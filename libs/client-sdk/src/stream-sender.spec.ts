import { Duplex } from 'node:stream';
import { status, type ServiceError } from '@grpc/grpc-js';
import { MismatchedDevices } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type {
  ConnectRequest,
  ConnectResponse,
  SendRequest,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { mismatchedDevices } from './client/mismatched-devices';
import { explain } from './errors';
import { StreamSender } from './stream-sender';

/** A Connect call's client end: what the sender writes, and what the test has the gateway answer. */
function connectCall() {
  const written: ConnectRequest[] = [];
  const call = new Duplex({
    objectMode: true,
    read: () => undefined,
    write: (message: ConnectRequest, _encoding, done) => {
      written.push(message);
      done();
    },
  });
  return {
    call,
    written,
    answer: (message: ConnectResponse) => call.push(message),
    end: () => call.push(null),
  };
}

const request = (destinationAccountId: string): SendRequest => ({
  destinationAccountId,
  clientTimestampMs: '1',
  ephemeral: false,
  envelopes: [],
});

const failure = (promise: Promise<unknown>): Promise<ServiceError> =>
  promise.then(
    () => {
      throw new Error('the send succeeded');
    },
    (error: unknown) => error as ServiceError,
  );

describe('StreamSender', () => {
  it('sends each request with a request id of its own and settles each with the answer carrying that id', async () => {
    const { call, written, answer } = connectCall();
    const sender = new StreamSender(call);
    const first = sender.send(request('a'));
    const second = sender.send(request('b'));
    expect(written).toEqual([
      { send: { requestId: '1', request: request('a') } },
      { send: { requestId: '2', request: request('b') } },
    ]);
    expect(sender.inFlight).toBe(2);
    answer({ sendResult: { requestId: '2', sent: { guids: ['g2'], serverTimestampMs: '9' } } });
    answer({ sendResult: { requestId: '1', sent: { guids: ['g1'], serverTimestampMs: '8' } } });
    await expect(second).resolves.toEqual({ guids: ['g2'], serverTimestampMs: '9' });
    await expect(first).resolves.toEqual({ guids: ['g1'], serverTimestampMs: '8' });
    expect(sender.inFlight).toBe(0);
  });

  it("fails a send with Send's error: its code, details and trailers, the mismatched devices read as from Send", async () => {
    const { call, answer } = connectCall();
    const sender = new StreamSender(call);
    const sent = sender.send(request('a'));
    const mismatch: MismatchedDevices = { missingDeviceIds: [2], extraDeviceIds: [], staleDeviceIds: [3] };
    answer({
      sendResult: {
        requestId: '1',
        error: {
          code: status.FAILED_PRECONDITION,
          details: 'device list mismatch: missing [2], extra [], stale [3]',
          trailers: [
            {
              key: 'sotto-mismatched-devices-bin',
              value: Buffer.from(MismatchedDevices.encode(mismatch).finish()),
            },
            { key: 'sotto-refusal', value: Buffer.from('device-list-mismatch') },
            // No trailer could carry this key: left out, the rest kept.
            { key: 'Not A Key', value: Buffer.from('x') },
          ],
        },
      },
    });
    const error = await failure(sent);
    expect(error).toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: 'device list mismatch: missing [2], extra [], stale [3]',
      message: '9 FAILED_PRECONDITION: device list mismatch: missing [2], extra [], stale [3]',
    });
    expect(error.metadata.get('sotto-refusal')).toEqual(['device-list-mismatch']);
    expect(mismatchedDevices(error)).toEqual(mismatch);
  });

  it('fails a send not answered within its deadline, and ignores the answer that comes later', async () => {
    const { call, answer } = connectCall();
    const sender = new StreamSender(call);
    const error = await failure(sender.send(request('a'), { deadlineMs: 20 }));
    expect(error.code).toBe(status.DEADLINE_EXCEEDED);
    answer({ sendResult: { requestId: '1', sent: { guids: ['late'], serverTimestampMs: '1' } } });
    const next = sender.send(request('b'));
    answer({ sendResult: { requestId: '2', sent: { guids: ['g2'], serverTimestampMs: '1' } } });
    await expect(next).resolves.toEqual({ guids: ['g2'], serverTimestampMs: '1' });
  });

  it('fails the sends pending when the stream ends with UNAVAILABLE, after answers that came before its end', async () => {
    const { call, answer, end } = connectCall();
    const sender = new StreamSender(call);
    const answered = sender.send(request('a'));
    const unanswered = sender.send(request('b'));
    const idle = sender.idle();
    answer({ sendResult: { requestId: '1', sent: { guids: ['g1'], serverTimestampMs: '1' } } });
    end();
    await expect(answered).resolves.toEqual({ guids: ['g1'], serverTimestampMs: '1' });
    const error = await failure(unanswered);
    expect(error).toMatchObject({
      code: status.UNAVAILABLE,
      details: 'the Connect stream ended before the send was answered; try again',
    });
    expect(explain(error, 'gw:7400').message).toBe(
      'server gw:7400: the Connect stream ended before the send was answered; try again',
    );
    await idle;
    expect(sender.open).toBe(false);
    expect(await failure(sender.send(request('c')))).toMatchObject({ code: status.UNAVAILABLE });
  });

  it('says why the stream failed, when it did', async () => {
    const { call, end } = connectCall();
    const sender = new StreamSender(call);
    const pending = sender.send(request('a'));
    call.emit('error', Object.assign(new Error('16 UNAUTHENTICATED: bad secret'), { details: 'bad secret' }));
    end();
    expect(await failure(pending)).toMatchObject({
      code: status.UNAVAILABLE,
      details: 'the Connect stream failed (bad secret) before the send was answered; try again',
    });
  });
});
