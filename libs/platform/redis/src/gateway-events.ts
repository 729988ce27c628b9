import { gatewayEvents, presenceRegistry } from '@sotto/contracts';
import { publishEach } from './pubsub';
import type { Redis } from './redis.module';
import { pipelineEach } from './slots';

/**
 * Telling the gateway that holds a device's delivery stream about it: presence
 * (displacements, ephemeral envelopes, vault reports) and the relay (new mail)
 * both find the holder in the presence registry and publish on its gateway's
 * event channel, so both do it here, the same way.
 */

/** A device, as the presence registry and gateway events name it. */
export interface GatewayDevice {
  readonly accountId: string;
  readonly deviceId: number;
}

/** What an event tells a gateway about one of its streams: all of it but which device and stream. */
export type GatewayEventKind = Omit<gatewayEvents.Event, 'device' | 'streamId'>;

/** An event for the stream that `holder` has of `device`. */
export interface HeldStreamEvent {
  readonly device: GatewayDevice;
  readonly holder: presenceRegistry.Holder;
  readonly kind: GatewayEventKind;
}

/** The gateway and stream holding each device's stream, if any: one round trip per Redis master. */
export async function locateHolders(
  redis: Redis,
  devices: readonly GatewayDevice[],
): Promise<(presenceRegistry.Holder | undefined)[]> {
  const replies = await pipelineEach(redis, devices, presenceRegistry.key, (pipeline, device) =>
    pipeline.get(presenceRegistry.key(device)),
  );
  return replies.map(([error, value]) => {
    if (error) throw error;
    return presenceRegistry.decodeHolder(value as string | null);
  });
}

/**
 * Publishes each event on the channel of the gateway holding its stream: one round trip on a server;
 * on a Redis Cluster, one per master serving the gateways' channels.
 */
export function publishToGateways(redis: Redis, events: readonly HeldStreamEvent[]): Promise<void> {
  return publishEach(
    redis,
    events,
    ({ holder }) => gatewayEvents.channel(holder.gatewayId),
    ({ device, holder, kind }) => gatewayEvents.encode({ device, streamId: holder.streamId, ...kind }),
  );
}

/**
 * Publishes one event about each item's device to the gateway holding its stream, found in the
 * presence registry; items whose device has no stream are skipped (`kindOf` is not asked for them).
 * Answers how many were published. Two round trips per Redis master at most: the lookup, then the
 * publishes. Best effort, as pub/sub is.
 */
export async function publishToHolders<T>(
  redis: Redis,
  items: readonly T[],
  deviceOf: (item: T) => GatewayDevice,
  kindOf: (item: T) => GatewayEventKind,
): Promise<number> {
  const devices = items.map(deviceOf);
  const holders = await locateHolders(redis, devices);
  const events = items.flatMap((item, index): HeldStreamEvent[] => {
    const device = devices[index];
    const holder = holders[index];
    return device === undefined || holder === undefined ? [] : [{ device, holder, kind: kindOf(item) }];
  });
  await publishToGateways(redis, events);
  return events.length;
}
