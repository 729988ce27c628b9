import { clientSource } from './client-source';

describe('clientSource', () => {
  it('counts an IPv4 client by its address, however grpc-js writes it', () => {
    expect(clientSource('203.0.113.7:51234')).toBe('203.0.113.7');
    expect(clientSource('ipv4:203.0.113.7:51234')).toBe('203.0.113.7');
    expect(clientSource('[::ffff:203.0.113.7]:443')).toBe('203.0.113.7');
  });

  it('counts an IPv6 client by its /64, so every address of one block is one source', () => {
    expect(clientSource('[2001:db8:1:2:aaaa::1]:443')).toBe('2001:db8:1:2::/64');
    expect(clientSource('[2001:db8:1:2:bbbb::7]:443')).toBe('2001:db8:1:2::/64');
  });

  it('names a peer without an address', () => {
    expect(clientSource('')).toBe('unknown');
  });
});
