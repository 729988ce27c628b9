import { status } from '@grpc/grpc-js';
import { RpcException } from '@nestjs/microservices';
import { sourceBucket } from './source-address';

describe('sourceBucket', () => {
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
  ])('%s is limited as %s', (source, bucket) => {
    expect(sourceBucket(source)).toBe(bucket);
  });

  it('puts every address of one /64 in one bucket, and the next /64 in another', () => {
    expect(sourceBucket('2001:db8:1:2:aaaa::1')).toBe(sourceBucket('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(sourceBucket('2001:db8:1:3::1')).not.toBe(sourceBucket('2001:db8:1:2::1'));
  });

  it.each([
    ['', 'source: is required'],
    ['example.org', 'source: is not an IP address'],
    ['203.0.113.7:443', 'source: is not an IP address'],
    ['999.1.1.1', 'source: is not an IP address'],
  ])('refuses %p with INVALID_ARGUMENT', (source, message) => {
    let error: unknown;
    try {
      sourceBucket(source);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RpcException);
    expect((error as RpcException).getError()).toEqual({ code: status.INVALID_ARGUMENT, message });
  });
});
