import { GatewayEvent } from '../../generated/sotto/presence/v1/presence';
import { encodeToBuffer } from '../../wire-encoding';

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
  return encodeToBuffer(GatewayEvent, event);
}

export function decode(bytes: Uint8Array): GatewayEvent {
  return GatewayEvent.decode(bytes);
}

/**
 * Most envelope content bytes one NewMail event carries. A device with more
 * in one routed batch gets a NewMail without them, and its gateway reads them
 * from the mailbox: an event is one Redis message, which Redis and the
 * gateway each hold whole.
 */
export const NEW_MAIL_MAX_BYTES = 64 * 1024;
