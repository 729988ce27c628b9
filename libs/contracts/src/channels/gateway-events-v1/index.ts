import { GatewayEvent } from '../../generated/sotto/presence/v1/presence';

/**
 * Redis pub/sub from presence to gateways: one channel per gateway instance,
 * carrying protobuf `sotto.presence.v1.GatewayEvent`s about the device
 * streams that gateway holds.
 */
export function channel(gatewayId: string): string {
  return `sotto:gateway-events:v1:${gatewayId}`;
}

export type Event = GatewayEvent;

export function encode(event: GatewayEvent): Buffer {
  return Buffer.from(GatewayEvent.encode(event).finish());
}

export function decode(bytes: Uint8Array): GatewayEvent {
  return GatewayEvent.decode(bytes);
}
