import { status } from '@grpc/grpc-js';
import type { CallError } from '@sotto/contracts/generated/sotto/common/v1/call_error';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type { ConnectResponse, SendRequest } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { StreamSends, type SendOutcome, type StreamSendLimits } from './stream-sends';

/** A relay whose sends finish when the test says so. */
function handler() {
  const sent: { request: SendRequest; answer: (outcome: SendOutcome) => void }[] = [];
  const refused: CallError[] = [];
  return {
    sent,
    refused,
    send: (request: SendRequest) => new Promise<SendOutcome>((answer) => sent.push({ request, answer })),
    refuse: (error: CallError) => void refused.push(error),
  };
}

/** A Connect call that is congested when the test says so, and drains on `drain()`. */
function outlet() {
  const pushed: ConnectResponse[] = [];
  let drained: (() => void)[] = [];
  return {
    pushed,
    congested: false,
    push: (message: ConnectResponse) => void pushed.push(message),
    ready: () => new Promise<void>((resolve) => drained.push(resolve)),
    drain() {
      this.congested = false;
      const waiting = drained;
      drained = [];
      waiting.forEach((resolve) => resolve());
    },
  };
}

function flow() {
  const changes: string[] = [];
  return { changes, pause: () => changes.push('pause'), resume: () => changes.push('resume') };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

const request = (contentBytes: number): SendRequest => ({
  destinationAccountId: 'acct',
  clientTimestampMs: '1',
  ephemeral: false,
  envelopes: [
    {
      destinationDeviceId: 1,
      destinationRegistrationId: 7,
      type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
      content: new Uint8Array(contentBytes),
    },
  ],
});

const sent = (guid: string): SendOutcome => ({ sent: { guids: [guid], serverTimestampMs: '5' } });

function streamSends(limits: StreamSendLimits = { sends: 2, bytes: 1000 }) {
  const relay = handler();
  const call = outlet();
  const inbound = flow();
  let closed = 0;
  const sends = new StreamSends(
    { send: relay.send, refused: relay.refuse },
    call,
    inbound,
    limits,
    () => (closed += 1),
  );
  return { sends, relay, call, inbound, closedCount: () => closed };
}

describe('StreamSends', () => {
  it("answers each send with its request id and Send's response or error, as each finishes", async () => {
    const { sends, relay, call } = streamSends();
    sends.take({ requestId: '1', request: request(10) });
    sends.take({ requestId: '2', request: request(10) });
    expect(relay.sent.map((send) => send.request.envelopes[0]?.content.length)).toEqual([10, 10]);
    const mismatch: CallError = {
      code: status.FAILED_PRECONDITION,
      details: 'device list mismatch',
      trailers: [{ key: 'sotto-mismatched-devices-bin', value: Buffer.from([1, 2]) }],
    };
    relay.sent[1]?.answer({ error: mismatch });
    relay.sent[0]?.answer(sent('g1'));
    await settle();
    expect(call.pushed).toEqual([
      { sendResult: { requestId: '2', error: mismatch } },
      { sendResult: { requestId: '1', sent: { guids: ['g1'], serverTimestampMs: '5' } } },
    ]);
    expect(sends.held).toBe(0);
  });

  it('takes a send without a request as an empty Send, refused where Send refuses that', () => {
    const { sends, relay } = streamSends();
    sends.take({ requestId: '1' });
    expect(relay.sent[0]?.request).toEqual({
      destinationAccountId: '',
      clientTimestampMs: '0',
      ephemeral: false,
      envelopes: [],
    });
  });

  it('stops reading at the most sends it may hold, and reads again when one is answered', async () => {
    const { sends, relay, inbound } = streamSends({ sends: 2, bytes: 1000 });
    sends.take({ requestId: '1', request: request(1) });
    expect(inbound.changes).toEqual([]);
    sends.take({ requestId: '2', request: request(1) });
    expect(inbound.changes).toEqual(['pause']);
    expect(sends.held).toBe(2);
    relay.sent[0]?.answer(sent('g1'));
    await settle();
    expect(inbound.changes).toEqual(['pause', 'resume']);
    expect(sends.held).toBe(1);
  });

  it('stops reading at the most content bytes, taking one larger send alone', async () => {
    const { sends, relay, inbound } = streamSends({ sends: 10, bytes: 1000 });
    sends.take({ requestId: '1', request: request(600) });
    expect(inbound.changes).toEqual([]);
    sends.take({ requestId: '2', request: request(400) });
    expect(inbound.changes).toEqual(['pause']);
    relay.sent[0]?.answer(sent('g1'));
    relay.sent[1]?.answer(sent('g2'));
    await settle();
    expect(inbound.changes).toEqual(['pause', 'resume']);
    sends.take({ requestId: '3', request: request(5000) });
    expect(inbound.changes).toEqual(['pause', 'resume', 'pause']);
    expect(relay.sent).toHaveLength(3);
  });

  it('refuses a request id already in flight, without sending it, and still answers the first', async () => {
    const { sends, relay, call } = streamSends({ sends: 4, bytes: 1000 });
    sends.take({ requestId: '7', request: request(1) });
    sends.take({ requestId: '7', request: request(1) });
    const duplicate = {
      code: status.INVALID_ARGUMENT,
      details: 'send.request_id: 7 is already in flight on this stream',
      trailers: [],
    };
    expect(relay.sent).toHaveLength(1);
    expect(relay.refused).toEqual([duplicate]);
    expect(call.pushed).toEqual([{ sendResult: { requestId: '7', error: duplicate } }]);
    relay.sent[0]?.answer(sent('g7'));
    await settle();
    expect(call.pushed[1]).toEqual({
      sendResult: { requestId: '7', sent: { guids: ['g7'], serverTimestampMs: '5' } },
    });
    // Answered, the id may be used again.
    sends.take({ requestId: '7', request: request(1) });
    expect(relay.sent).toHaveLength(2);
    expect(sends.held).toBe(1);
  });

  it('keeps holding sends answered while the device does not read, until the call has written them', async () => {
    const { sends, relay, call, inbound } = streamSends({ sends: 2, bytes: 1000 });
    sends.take({ requestId: '1', request: request(1) });
    sends.take({ requestId: '2', request: request(1) });
    call.congested = true;
    relay.sent[0]?.answer(sent('g1'));
    relay.sent[1]?.answer(sent('g2'));
    await settle();
    // Written, but not taken by the device: reading stays paused, so results cannot pile up.
    expect(call.pushed).toHaveLength(2);
    expect(sends.held).toBe(2);
    expect(inbound.changes).toEqual(['pause']);
    call.drain();
    await settle();
    expect(sends.held).toBe(0);
    expect(inbound.changes).toEqual(['pause', 'resume']);
  });

  it('once closed, answers nothing more and takes nothing more; sends in flight still finish at the relay', async () => {
    const { sends, relay, call, closedCount } = streamSends();
    sends.take({ requestId: '1', request: request(1) });
    sends.close();
    sends.close();
    expect(closedCount()).toBe(1);
    sends.take({ requestId: '2', request: request(1) });
    expect(relay.sent).toHaveLength(1);
    relay.sent[0]?.answer(sent('g1'));
    await settle();
    expect(call.pushed).toEqual([]);
  });
});
