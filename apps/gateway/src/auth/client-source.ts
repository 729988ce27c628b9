import { addressBucket, peerAddress } from '@sotto/platform/grpc';

/**
 * Whom a call is counted against by the per-address limits (failed
 * authentications, registrations, recoveries), from grpc-js's peer string:
 * the client's IPv4 address, or its IPv6 /64 (see addressBucket). Behind a
 * load balancer this is the balancer's address unless it keeps client
 * addresses (gateway.service.externalTrafficPolicy=Local in the chart).
 */
export function clientSource(peer: string): string {
  const address = peerAddress(peer);
  return addressBucket(address) ?? (address === '' ? 'unknown' : address);
}
