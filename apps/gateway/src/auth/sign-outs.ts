import { Injectable, Logger } from '@nestjs/common';
import type { AccountId, DeviceId } from '@sotto/platform/ids';
import { Upstream } from '../upstream/upstream';
import { CredentialRevocations } from './credential-revocations';

/**
 * What follows a committed sign-out of devices (recovery, a rotated secret, an
 * unlinked device): no gateway accepts their old credentials any more, and
 * their open delivery streams end.
 */
@Injectable()
export class SignOuts {
  private readonly logger = new Logger(SignOuts.name);

  constructor(
    private readonly upstream: Upstream,
    private readonly revocations: CredentialRevocations,
  ) {}

  async signedOut(accountId: AccountId, deviceIds: readonly DeviceId[]): Promise<void> {
    if (deviceIds.length === 0) return;
    await this.revocations.revoke(accountId, deviceIds);
    await this.upstream.presence
      .endStreams({ devices: deviceIds.map((deviceId) => ({ accountId, deviceId })) })
      .catch((error: unknown) =>
        this.logger.warn(
          `could not end the streams of signed-out devices: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
  }
}
