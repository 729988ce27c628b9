import { addressBucket, peerAddress } from './client-address';

describe('peerAddress', () => {
  it('keeps the address and drops the port, for IPv4 and bracketed IPv6', () => {
    expect(peerAddress('203.0.113.7:51234')).toBe('203.0.113.7');
    expect(peerAddress('ipv4:203.0.113.7:51234')).toBe('203.0.113.7');
    expect(peerAddress('[2001:db8::1]:443')).toBe('2001:db8::1');
    expect(peerAddress('[::ffff:127.0.0.1]:443')).toBe('::ffff:127.0.0.1');
  });

  it('leaves what has no port as it is', () => {
    expect(peerAddress('2001:db8::1')).toBe('2001:db8::1');
    expect(peerAddress('')).toBe('');
  });
});

describe('addressBucket', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['2001:db8::', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['::ffff:203.0.113.7', '203.0.113.7'],
    ['::ffff:cb00:7107', '203.0.113.7'],
  ])('%s is limited as %s', (address, bucket) => {
    expect(addressBucket(address)).toBe(bucket);
  });

  it('puts every address of one /64 in one bucket, and the next /64 in another', () => {
    expect(addressBucket('2001:db8:1:2:aaaa::1')).toBe(addressBucket('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(addressBucket('2001:db8:1:3::1')).not.toBe(addressBucket('2001:db8:1:2::1'));
  });

  it.each(['', 'example.org', '203.0.113.7:443', '999.1.1.1'])('has no bucket for %p', (address) => {
    expect(addressBucket(address)).toBeUndefined();
  });
});
