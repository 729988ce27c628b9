import { isIP } from 'node:net';
import { status } from '@grpc/grpc-js';
import { grpcError } from '@sotto/platform/grpc';

/** The eight 16-bit groups of an IPv6 address, '::' and an embedded IPv4 tail expanded. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const ipv4Tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (ipv4Tail) {
    const [a, b, c, d] = ipv4Tail.slice(1).map(Number);
    text = `${text.slice(0, ipv4Tail.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const parse = (part: string): number[] =>
    part === '' ? [] : part.split(':').map((group) => parseInt(group, 16));
  const [head = '', tail] = text.split('::');
  if (tail === undefined) return parse(head);
  const before = parse(head);
  const after = parse(tail);
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}

/**
 * The rate-limit bucket of a client address: an IPv4 address as it is, an
 * IPv6 address by its /64 (one subscriber's share; the rest of the bits are
 * theirs to vary at will). IPv4-mapped IPv6 counts as the IPv4 address.
 */
export function sourceBucket(source: string, field = 'source'): string {
  if (source === '') throw grpcError(status.INVALID_ARGUMENT, `${field}: is required`);
  const address = source.split('%')[0] ?? '';
  switch (isIP(address)) {
    case 4:
      return address;
    case 6: {
      const groups = ipv6Groups(address.toLowerCase());
      const mapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
      if (mapped) return [groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff].join('.');
      return `${groups
        .slice(0, 4)
        .map((group) => group.toString(16))
        .join(':')}::/64`;
    }
    default:
      throw grpcError(status.INVALID_ARGUMENT, `${field}: is not an IP address`);
  }
}
