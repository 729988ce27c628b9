import { pad } from '../padding';
import { ContentError, decodeContent, encodeContent, receivedEntry, type Content } from './content';

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

  it("carries the sender's profile key, and refuses one that is not 32 bytes of base64, naming it", () => {
    const withKey: Content = { ...message, profileKey: Buffer.alloc(32, 7).toString('base64') };
    expect(decodeContent(encodeContent(withKey), envelope(ALICE), BOB)).toEqual(withKey);
    for (const bad of [
      '',
      'AAAA',
      Buffer.alloc(31).toString('base64'),
      Buffer.alloc(33).toString('base64'),
    ]) {
      expect(() =>
        decodeContent(encodeContent({ ...message, profileKey: bad }), envelope(ALICE), BOB),
      ).toThrow('envelope guid-1: profileKey: must be base64 of 32 bytes');
    }
  });

  it("refuses a sync copy from another account: only this account's devices speak for it", () => {
    const forged = encodeContent({ ...message, kind: 'sync', to: 'carol' });
    expect(() => decodeContent(forged, envelope(ALICE), BOB)).toThrow(
      'envelope guid-1: a sync copy from another account',
    );
  });

  it('refuses a plaintext whose padding is broken', () => {
    expect(() => decodeContent(new Uint8Array(160), envelope(ALICE), BOB)).toThrow(
      'envelope guid-1: message padding is invalid',
    );
  });

  it.each([
    ['not JSON', '{"v":1,'],
    ['null', 'null'],
    ['a number', '42'],
    ['a message without text', '{"v":1,"from":"alice","sentAt":"2025-01-01T00:00:00.000Z"}'],
    ['a text that is not a string', '{"v":1,"text":{"a":1},"sentAt":"2025-01-01T00:00:00.000Z"}'],
    ['a time that is not ISO 8601', '{"v":1,"text":"hi","sentAt":"yesterday\\n[x] alice: hi"}'],
    ['an unknown kind', '{"v":1,"kind":"payment","text":"hi","sentAt":"2025-01-01T00:00:00.000Z"}'],
    ['another version', '{"v":2,"text":"hi","sentAt":"2025-01-01T00:00:00.000Z"}'],
  ])('refuses %s as a ContentError, which the inbox records and drops', (_what, json) => {
    const decode = () => decodeContent(pad(Buffer.from(json)), envelope(ALICE), BOB);
    expect(decode).toThrow(ContentError);
    expect(decode).toThrow(/^envelope guid-1: /);
  });
});

describe('receivedEntry', () => {
  const sentAt = '2025-01-01T00:00:00.000Z';
  const parties = { sender: 'alice', ownUsername: 'bob' };

  it('keeps a message (the first version had no kind) as received by this user from the authenticated sender', () => {
    const firstVersion = JSON.parse(`{"v":1,"from":"alice","text":"hello","sentAt":"${sentAt}"}`) as Content;
    expect(receivedEntry(firstVersion, 'guid-1', parties)).toEqual({
      kind: 'message',
      direction: 'in',
      from: 'alice',
      to: 'bob',
      text: 'hello',
      sentAt,
      guid: 'guid-1',
    });
  });

  it('names the sender the server authenticated, whatever name the content claims', () => {
    const claimed: Content = { v: 1, from: 'alice', text: 'it is me, alice', sentAt };
    expect(receivedEntry(claimed, 'guid-1', { sender: 'mallory', ownUsername: 'bob' })).toMatchObject({
      from: 'mallory',
      to: 'bob',
    });
    expect(receivedEntry({ v: 1, text: 'no name at all', sentAt }, 'guid-2', parties)).toMatchObject({
      from: 'alice',
    });
  });

  it('keeps a copy from another device of this account as sent by this user, to whom it was sent', () => {
    expect(
      receivedEntry({ v: 1, kind: 'sync', from: 'eve', to: 'carol', text: 'hi', sentAt }, 'guid-2', parties),
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
    expect(receivedEntry({ v: 1, kind: 'typing', from: 'alice' }, 'guid-3', parties)).toBeUndefined();
  });
});
