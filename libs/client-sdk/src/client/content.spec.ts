import { decodeContent, encodeContent, receivedEntry, type Content } from './content';

const ALICE = '0190a1b2-0000-7000-8000-000000000001';
const BOB = '0190a1b2-0000-7000-8000-000000000002';
const envelope = (sourceAccountId: string) => ({ guid: 'guid-1', sourceAccountId });

describe('content', () => {
  const message: Content = { v: 1, from: 'alice', text: 'hello', sentAt: '2025-01-01T00:00:00.000Z' };

  it('reads back what was encoded', () => {
    const typing: Content = { v: 1, kind: 'typing', from: 'alice' };
    const sync: Content = { ...message, kind: 'sync', to: 'bob' };
    expect(decodeContent(encodeContent(message), envelope(ALICE), BOB)).toEqual(message);
    expect(decodeContent(encodeContent(typing), envelope(ALICE), BOB)).toEqual(typing);
    expect(decodeContent(encodeContent(sync), envelope(ALICE), ALICE)).toEqual(sync);
  });

  it('pads, so texts of different lengths encrypt to the same size', () => {
    const short = encodeContent({ ...message, text: 'hi' });
    const longer = encodeContent({
      ...message,
      text: 'a message of some sixty characters, give or take a few',
    });
    expect(short.length % 160).toBe(0);
    expect(longer).toHaveLength(short.length);
  });

  it("refuses a sync copy from another account: only this account's devices speak for it", () => {
    const forged = encodeContent({ ...message, kind: 'sync', to: 'carol' });
    expect(() => decodeContent(forged, envelope(ALICE), BOB)).toThrow(
      'envelope guid-1: a sync copy from another account',
    );
  });

  it('refuses a plaintext whose padding is broken', () => {
    expect(() => decodeContent(new Uint8Array(160), envelope(ALICE), BOB)).toThrow(
      'message padding is invalid',
    );
  });
});

describe('receivedEntry', () => {
  const sentAt = '2025-01-01T00:00:00.000Z';

  it('keeps a message (the first version had no kind) as received by this user', () => {
    const firstVersion = JSON.parse(`{"v":1,"from":"alice","text":"hello","sentAt":"${sentAt}"}`) as Content;
    expect(receivedEntry(firstVersion, 'guid-1', 'bob')).toEqual({
      kind: 'message',
      direction: 'in',
      from: 'alice',
      to: 'bob',
      text: 'hello',
      sentAt,
      guid: 'guid-1',
    });
  });

  it('keeps a copy from another device of this account as sent, to whom it was sent', () => {
    expect(
      receivedEntry({ v: 1, kind: 'sync', from: 'bob', to: 'carol', text: 'hi', sentAt }, 'guid-2', 'bob'),
    ).toEqual({
      kind: 'message',
      direction: 'out',
      from: 'bob',
      to: 'carol',
      text: 'hi',
      sentAt,
      guid: 'guid-2',
    });
  });

  it('keeps nothing of a typing indicator', () => {
    expect(receivedEntry({ v: 1, kind: 'typing', from: 'alice' }, 'guid-3', 'bob')).toBeUndefined();
  });
});
