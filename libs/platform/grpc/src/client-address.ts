import { isIP } from 'node:net';

/**
 * The client's IP address from grpc-js's peer string ("1.2.3.4:5678",
 * "[::1]:5678"). Behind a load balancer this is the balancer's unless it
 * preserves source addresses (e.g. externalTrafficPolicy: Local).
 */
export function peerAddress(peer: string): string {
  const bracketed = /^\[([^\]]+)\]:\d+$/.exec(peer);
  if (bracketed) return bracketed[1] ?? '';
  const withoutScheme = peer.replace(/^ipv[46]:/, '');
  const colon = withoutScheme.lastIndexOf(':');
  return colon > 0 && withoutScheme.indexOf(':') === colon ? withoutScheme.slice(0, colon) : withoutScheme;
}

/** The eight 16-bit groups of an IPv6 address, '::' and an embedded IPv4 tail expanded. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const ipv4Tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (ipv4Tail) {
    const [a = 0, b = 0, c = 0, d = 0] = ipv4Tail.slice(1).map(Number);
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
 * The rate-limit bucket of a client IP address: an IPv4 address as it is, an
 * IPv6 address by its /64 (one subscriber's share; the rest of the bits are
 * theirs to vary at will). IPv4-mapped IPv6 counts as the IPv4 address. A
 * zone ("%eth0") is ignored. Undefined if `address` is not an IP address.
 */
export function addressBucket(address: string): string | undefined {
  const bare = address.split('%')[0] ?? '';
  switch (isIP(bare)) {
    case 4:
      return bare;
    case 6: {
      const groups = ipv6Groups(bare.toLowerCase());
      const [g6 = 0, g7 = 0] = groups.slice(6);
      const mapped = groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff;
      if (mapped) return [g6 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff].join('.');
      return `${groups
        .slice(0, 4)
        .map((group) => group.toString(16))
        .join(':')}::/64`;
    }
    default:
      return undefined;
  }
}
