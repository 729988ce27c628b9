import { Injectable, Logger } from '@nestjs/common';
import { Metadata } from '@grpc/grpc-js';
import { RpcException } from '@nestjs/microservices';
import type { VaultAttemptFailed, VaultStatus } from '@sotto/contracts/generated/sotto/common/v1/backup';
import { parseAccountId, type AccountId } from '@sotto/platform/ids';
import { Upstream } from '../upstream/upstream';

/** The key-vault names the account whose try failed in this metadata, for the gateway alone. */
const ACCOUNT_ID_METADATA = 'account-id';

/** How long a stream's QueueEmpty may wait for the vault's answer before it goes without a report. */
export const VAULT_CHECK_TIMEOUT_MS = 2000;

/**
 * What an account's devices are told of its vault: failed tries while they are
 * counted (until a successful login or a reset), or that the vault was
 * destroyed (until a new password or a reset). Nothing otherwise.
 */
export function reportOf(vault: VaultStatus | undefined): VaultAttemptFailed | undefined {
  if (!vault) return undefined;
  if (vault.destroyed) {
    return { attemptsLeft: 0, nextTryAfterMs: '0', failedAttempts: vault.failedAttempts, destroyed: true };
  }
  if (!vault.hasVault || vault.failedAttempts === 0) return undefined;
  return {
    attemptsLeft: vault.attemptsLeft,
    nextTryAfterMs: vault.nextTryAfterMs,
    failedAttempts: vault.failedAttempts,
    destroyed: false,
  };
}

/** The metadata of an upstream error, when it has some. */
function metadataOf(error: unknown): Metadata | undefined {
  const inner: unknown = error instanceof RpcException ? error.getError() : undefined;
  const metadata =
    typeof inner === 'object' && inner !== null ? (inner as { metadata?: unknown }).metadata : undefined;
  return metadata instanceof Metadata ? metadata : undefined;
}

/**
 * Reports failed password tries on a vault to the account's signed-in
 * devices: live, through presence, to those connected when a wrong password
 * is refused; and on every Connect (before QueueEmpty) while the vault still
 * counts failed tries, so a device that was offline learns of them too.
 */
@Injectable()
export class VaultReports {
  private readonly logger = new Logger(VaultReports.name);

  constructor(private readonly upstream: Upstream) {}

  /**
   * A FinishLogin refused by the vault: if a try failed, its account's devices
   * are told (in the background; the caller's answer does not wait for them),
   * and the account id is taken out of the error, which goes on to the caller.
   */
  afterFailedLogin(error: unknown): unknown {
    const metadata = metadataOf(error);
    const named = metadata?.get(ACCOUNT_ID_METADATA)[0];
    if (metadata === undefined || named === undefined) return error;
    metadata.remove(ACCOUNT_ID_METADATA);
    const parsed = parseAccountId(String(named));
    if (parsed.ok) {
      const accountId = parsed.value;
      this.tellDevices(accountId).catch((failure: unknown) =>
        this.logger.warn(
          `could not report a failed vault try of ${accountId}: ${failure instanceof Error ? failure.message : String(failure)}`,
        ),
      );
    }
    return error;
  }

  /** What a device connecting now should be told of its vault, if anything; undefined when the vault can't say. */
  async pending(accountId: AccountId): Promise<VaultAttemptFailed | undefined> {
    try {
      const { vault } = await this.upstream.keyVault.getVaultStatus({ accountId }, new Metadata(), {
        deadline: Date.now() + VAULT_CHECK_TIMEOUT_MS,
      });
      return reportOf(vault);
    } catch (error) {
      this.logger.warn(
        `could not ask the vault of ${accountId} about failed tries: ${error instanceof Error ? error.message : String(error)}`,
      );
      return undefined;
    }
  }

  private async tellDevices(accountId: AccountId): Promise<void> {
    const { vault } = await this.upstream.keyVault.getVaultStatus({ accountId });
    const report = reportOf(vault);
    if (!report) return;
    const { devices } = await this.upstream.directory.listDevices({ accountId });
    if (devices.length === 0) return;
    await this.upstream.presence.reportVaultAttempt({
      devices: devices.map(({ deviceId }) => ({ accountId, deviceId })),
      report,
    });
  }
}
