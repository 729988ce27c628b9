import { timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import type {
  SendSealedRequest,
  SendSealedResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { grpcError, requireAccountId } from '@sotto/platform/grpc';
import type { AccountId } from '@sotto/platform/ids';
import { CallLimits, SEALED_SEND_LIMIT_AFTER_ACCESS } from '../limits/call-limits';
import { UnidentifiedAccess } from '../unidentified-access/unidentified-access';
import { RelayCalls } from '../upstream/relay-calls';

/** The length of an unidentified-access key, as the directory keeps it. */
export const ACCESS_KEY_BYTES = 16;

/**
 * Every refusal of the access key says this, whether the key is wrong,
 * missing or another account's, or the destination does not exist: which of
 * them it was would tell a stranger that an account exists (Signal answers
 * all of them 401 alike).
 */
export const SEALED_SEND_REFUSED = 'unidentified_access_key: not accepted for this destination';

function refused(): Error {
  return grpcError(status.UNAUTHENTICATED, SEALED_SEND_REFUSED);
}

/**
 * SendSealed: a send whose sender the server does not learn. It carries no
 * device credential; the destination's unidentified-access key authorises
 * it instead. The key travels in the request, not as call metadata as
 * Signal's `Unidentified-Access-Key` header does: it belongs to this one
 * destination, so it sits beside it in the typed, validated, contract-guarded
 * request, and never in `authorization`-like metadata that proxies, tracing
 * and the gateway's own authentication look at. Nothing of the caller but
 * its address (for the per-address limit, in Redis under a short TTL) is
 * used, logged or passed on: the relay is told the send is sealed, and keeps
 * no source.
 */
@Injectable()
export class SealedSends {
  constructor(
    private readonly access: UnidentifiedAccess,
    private readonly relay: RelayCalls,
    private readonly limits: CallLimits,
  ) {}

  /** Once admitted by the per-address limit; answered once Kafka holds the envelopes. */
  async send(request: SendSealedRequest): Promise<SendSealedResponse> {
    const destination = requireAccountId(request.destinationAccountId, 'destination_account_id');
    const key = request.unidentifiedAccessKey;
    if (key.length !== 0 && key.length !== ACCESS_KEY_BYTES) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        `unidentified_access_key: must be ${ACCESS_KEY_BYTES} bytes, or empty for an account that accepts sealed messages from anyone`,
      );
    }
    request.envelopes.forEach((envelope, index) => {
      if (envelope.type !== EnvelopeType.ENVELOPE_TYPE_UNIDENTIFIED_SENDER) {
        throw grpcError(
          status.INVALID_ARGUMENT,
          `envelopes[${index}].type: SendSealed carries only ENVELOPE_TYPE_UNIDENTIFIED_SENDER`,
        );
      }
    });
    await this.authorize(destination, key);
    await this.limits.take(SEALED_SEND_LIMIT_AFTER_ACCESS, destination);
    const { guids, serverTimestampMs } = await this.relay.send({
      sourceAccountId: '',
      sourceDeviceId: 0,
      destinationAccountId: destination,
      clientTimestampMs: request.clientTimestampMs,
      ephemeral: request.ephemeral,
      envelopes: request.envelopes,
      sealed: true,
    });
    return { guids, serverTimestampMs };
  }

  /**
   * Passes when the destination accepts sealed messages from anyone or `key`
   * is its key, compared in constant time, against its access as this
   * gateway has it cached (or reads it).
   */
  private async authorize(destination: AccountId, key: Uint8Array): Promise<void> {
    const [access] = await this.access.of([destination]);
    if (access === undefined) throw refused();
    if (access.unrestrictedUnidentifiedAccess) return;
    const stored = access.unidentifiedAccessKey;
    if (key.length !== ACCESS_KEY_BYTES || stored.length !== ACCESS_KEY_BYTES) throw refused();
    if (!timingSafeEqual(key, stored)) throw refused();
  }
}
