import { Inject, Injectable } from '@nestjs/common';
import { presenceBatches } from '@sotto/contracts';
import { PeriodicTask } from '@sotto/platform/periodic';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { Upstream } from '../upstream/upstream';
import { DeliveryMetrics } from './delivery-metrics';
import { DeliveryStreams } from './delivery-streams';

/**
 * Renews presence's claims on this gateway's streams every
 * PRESENCE_HEARTBEAT_MS, however many there are: in calls of at most
 * presence's limit each, one after another, so 100,000 streams are 100
 * small calls, not one over gRPC's message limit. A call that fails is
 * logged and the others still go; the claims it carried are renewed by the
 * next beat, well within PRESENCE_TTL_MS.
 */
@Injectable()
export class PresenceHeartbeat extends PeriodicTask {
  constructor(
    private readonly streams: DeliveryStreams,
    private readonly upstream: Upstream,
    private readonly metrics: DeliveryMetrics,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
  ) {
    super(PresenceHeartbeat.name, env.PRESENCE_HEARTBEAT_MS);
  }

  protected async run(): Promise<void> {
    const batches = presenceBatches(this.streams.devices());
    const failures: string[] = [];
    for (const devices of batches) {
      try {
        // A call slower than a period has failed: the next round is due.
        await this.upstream.presence.heartbeat({ gatewayId: this.env.GATEWAY_ID, devices }, undefined, {
          deadline: Date.now() + this.env.PRESENCE_HEARTBEAT_MS,
        });
      } catch (error) {
        failures.push(error instanceof Error ? error.message : String(error));
      }
    }
    this.metrics.heartbeatRound(batches.length, failures.length);
    if (failures.length > 0) {
      throw new Error(
        `${failures.length} of ${batches.length} presence heartbeat calls failed: ${failures[0]}`,
      );
    }
  }
}
