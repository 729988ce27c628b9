import { peerAddress } from './vault.controller';

describe('peerAddress', () => {
  it('keeps the address and drops the port, for IPv4 and bracketed IPv6', () => {
    expect(peerAddress('203.0.113.7:51234')).toBe('203.0.113.7');
    expect(peerAddress('ipv4:203.0.113.7:51234')).toBe('203.0.113.7');
    expect(peerAddress('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(peerAddress('[::ffff:127.0.0.1]:443')).toBe('::ffff:127.0.0.1');
  });

  it('leaves what has no port as it is, so the vault can refuse it by name', () => {
    expect(peerAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(peerAddress('')).toBe('');
  });
});
