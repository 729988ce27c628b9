import { randomBytes } from 'node:crypto';
import { PrivateKey } from '@signalapp/libsignal-client';
import { decodeLinkCode, encodeLinkCode, linkFingerprint } from './link-code';

describe('link codes', () => {
  const key = PrivateKey.generate().getPublicKey();
  const token = new Uint8Array(randomBytes(32));

  it('carry the token and the public key, as text that survives a copy and paste', () => {
    const code = encodeLinkCode({ token, publicKey: key });
    expect(code).toMatch(/^[A-Za-z0-9_-]{88}$/);
    const decoded = decodeLinkCode(`  ${code}\n`);
    expect(decoded.token).toEqual(token);
    expect(decoded.publicKey.equals(key)).toBe(true);
  });

  it('refuse garbage, a truncated or lengthened code, another version and a key that is not one', () => {
    const code = encodeLinkCode({ token, publicKey: key });
    const raw = Buffer.from(code, 'base64url');
    expect(() => decodeLinkCode('')).toThrow('not a link code: it has characters a link code never has');
    expect(() => decodeLinkCode('hello world')).toThrow('characters a link code never has');
    expect(() => decodeLinkCode(`${code}=`)).toThrow('characters a link code never has');
    expect(() => decodeLinkCode(code.slice(0, -4))).toThrow('not a link code: wrong length');
    expect(() => decodeLinkCode(`${code}AAAA`)).toThrow('wrong length');
    const other = Buffer.from(raw);
    other[0] = 2;
    expect(() => decodeLinkCode(other.toString('base64url'))).toThrow(
      'not a link code this version understands (version 2)',
    );
    const badKey = Buffer.from(raw);
    badKey[33] = 0x42;
    expect(() => decodeLinkCode(badKey.toString('base64url'))).toThrow('its key is not a public key');
  });

  it('refuse to encode a token of the wrong size', () => {
    expect(() => encodeLinkCode({ token: new Uint8Array(16), publicKey: key })).toThrow(
      'a link token is 32 bytes, not 16',
    );
  });

  it('have a fingerprint of 4 groups of 5 digits, the same for the same key and different for another', () => {
    const fingerprint = linkFingerprint(key);
    expect(fingerprint).toMatch(/^\d{5} \d{5} \d{5} \d{5}$/);
    expect(linkFingerprint(decodeLinkCode(encodeLinkCode({ token, publicKey: key })).publicKey)).toBe(
      fingerprint,
    );
    expect(linkFingerprint(PrivateKey.generate().getPublicKey())).not.toBe(fingerprint);
  });
});
