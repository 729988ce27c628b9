/**
 * The presence registry in Redis: which gateway holds each device's delivery
 * stream. Presence is its only writer (claims, releases, heartbeats); the
 * relay reads it to push new mail straight to the gateway holding the device
 * (gateway-events channel), without a call to presence per batch.
 *
 * One string key per device, `sotto:presence:{<account>}:<device>`, holding
 * `<gatewayId> <streamId>` (neither contains a space) and expiring unless its
 * gateway heartbeats. The account is the hash tag: on a Redis Cluster an
 * account's devices share a slot.
 */
export interface Holder {
  readonly gatewayId: string;
  readonly streamId: string;
}

export function key(device: { readonly accountId: string; readonly deviceId: number }): string {
  return `sotto:presence:{${device.accountId}}:${device.deviceId}`;
}

export function encodeHolder(holder: Holder): string {
  return `${holder.gatewayId} ${holder.streamId}`;
}

export function decodeHolder(value: string | null | undefined): Holder | undefined {
  if (!value) return undefined;
  const space = value.indexOf(' ');
  if (space <= 0 || space === value.length - 1) return undefined;
  return { gatewayId: value.slice(0, space), streamId: value.slice(space + 1) };
}
