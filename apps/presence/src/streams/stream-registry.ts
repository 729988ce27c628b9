import { Inject, Injectable } from '@nestjs/common';
import { presenceRegistry } from '@sotto/contracts';
import {
  groupBySlot,
  locateHolders,
  pipelineEach,
  REDIS,
  RedisScript,
  type Redis,
} from '@sotto/platform/redis';

export const PRESENCE_TTL_MS = Symbol('PRESENCE_TTL_MS');

export type Holder = presenceRegistry.Holder;

export interface DeviceKey {
  readonly accountId: string;
  readonly deviceId: number;
}

const { encodeHolder, decodeHolder } = presenceRegistry;

// Take over a device's stream and return the previous holder, in one step.
const CLAIM = new RedisScript(
  `
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return previous
`,
  1,
);

// Release only if this exact stream still holds the device.
const RELEASE = new RedisScript(
  `
local current = redis.call('GET', KEYS[1])
local suffix = ' ' .. ARGV[1]
if current and string.sub(current, -string.len(suffix)) == suffix then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
`,
  1,
);

// Extend the claims this gateway still holds; a device since taken by another gateway is left alone.
const HEARTBEAT = `
local kept = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current and string.sub(current, 1, string.len(ARGV[1]) + 1) == ARGV[1] .. ' ' then
    redis.call('PEXPIRE', key, ARGV[2])
    kept = kept + 1
  end
end
return kept
`;

/**
 * Which gateway holds which device's delivery stream, in Redis. A claim
 * lives for the TTL unless its gateway heartbeats, so a gateway that dies
 * without saying so stops receiving events within one TTL.
 */
@Injectable()
export class StreamRegistry {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(PRESENCE_TTL_MS) private readonly ttlMs: number,
  ) {}

  // The account in braces: on Redis Cluster, an account's devices share a slot.
  private key(device: DeviceKey): string {
    return presenceRegistry.key(device);
  }

  async claim(device: DeviceKey, holder: Holder): Promise<Holder | undefined> {
    const previous = (await CLAIM.run(this.redis, [this.key(device)], [encodeHolder(holder), this.ttlMs])) as
      string | null;
    return decodeHolder(previous);
  }

  async release(device: DeviceKey, streamId: string): Promise<boolean> {
    return (await RELEASE.run(this.redis, [this.key(device)], [streamId])) === 1;
  }

  async heartbeat(gatewayId: string, devices: readonly DeviceKey[]): Promise<number> {
    // One script per slot on a Redis Cluster (an account's devices share one); one in all on a server.
    const kept = await Promise.all(
      groupBySlot(this.redis, devices, (device) => this.key(device)).map(
        async (group) =>
          (await this.redis.eval(
            HEARTBEAT,
            group.length,
            ...group.map((device) => this.key(device)),
            gatewayId,
            this.ttlMs,
          )) as number,
      ),
    );
    return kept.reduce((sum, each) => sum + each, 0);
  }

  /** Forgets the devices' claims, returning who held each. */
  async end(devices: readonly DeviceKey[]): Promise<(Holder | undefined)[]> {
    const results = await pipelineEach(
      this.redis,
      devices,
      (device) => this.key(device),
      (pipeline, device) => pipeline.getdel(this.key(device)),
    );
    return results.map(([error, value]) => {
      if (error) throw error;
      return decodeHolder(value as string | null);
    });
  }

  /** Who holds each device's stream: read as the relay reads it, one round trip per Redis master. */
  locate(devices: readonly DeviceKey[]): Promise<(Holder | undefined)[]> {
    return locateHolders(this.redis, devices);
  }
}
