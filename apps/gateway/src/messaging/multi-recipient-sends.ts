import { timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { multiRecipientTopic } from '@sotto/contracts';
import type {
  SendMultiRecipientRequest,
  SendMultiRecipientResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { grpcError, refuse } from '@sotto/platform/grpc';
import { parseAccountId } from '@sotto/platform/ids';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { CallLimits, MULTI_RECIPIENT_LIMIT_AFTER_ACCESS } from '../limits/call-limits';
import { UnidentifiedAccess } from '../unidentified-access/unidentified-access';
import { RelayCalls } from '../upstream/relay-calls';
import { ACCESS_KEY_BYTES, SEALED_SEND_REFUSED } from './sealed-sends';

/** One answer for a wrong combined key, an unknown recipient and a missing key alike, as SendSealed's. */
function refused(): Error {
  return grpcError(status.UNAUTHENTICATED, SEALED_SEND_REFUSED);
}

/**
 * SendMultiRecipient: a sealed group message in one upload. Like SendSealed
 * it carries no device credential and the server learns no sender; what
 * authorises it is the XOR of every recipient's unidentified-access key,
 * which only someone holding every one of those keys can make (a recipient
 * that accepts sealed messages from anyone counts as 16 zero bytes, as in
 * Signal). Signal's group send endorsements would also hide from the server
 * which group a send is for and spare the directory reads, but need zkgroup
 * server-stored groups; Sotto keeps groups on the clients, so combined keys
 * it is. Nothing of the caller but its address (the per-address limit) is
 * used; recipients' limits are taken only once the key is accepted, so
 * strangers without it spend nobody's budget.
 */
@Injectable()
export class MultiRecipientSends {
  constructor(
    private readonly access: UnidentifiedAccess,
    private readonly relay: RelayCalls,
    private readonly limits: CallLimits,
    @Inject(GATEWAY_ENV) private readonly env: GatewayEnv,
  ) {}

  /** Once admitted by the per-address limit; answered once Kafka holds every copy. */
  async send(request: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    const { MULTI_RECIPIENT_MAX_BYTES: maxBytes, MULTI_RECIPIENT_MAX_RECIPIENTS: maxRecipients } = this.env;
    if (request.message.length > maxBytes) {
      throw refuse(
        'too-large',
        `message: ${request.message.length} bytes is over the ${maxBytes}-byte limit`,
      );
    }
    if (request.combinedAccessKey.length !== ACCESS_KEY_BYTES) {
      throw grpcError(status.INVALID_ARGUMENT, `combined_access_key: must be ${ACCESS_KEY_BYTES} bytes`);
    }
    const parsed = multiRecipientTopic.parseSentMessage(request.message);
    if (!parsed.ok) throw grpcError(status.INVALID_ARGUMENT, `message: ${parsed.reason}`);
    const recipients = parsed.value.recipients.map((recipient) => recipient.accountId);
    if (recipients.length > maxRecipients) {
      throw refuse(
        'too-many',
        `message: ${recipients.length} recipients, over the limit of ${maxRecipients}`,
      );
    }
    for (const recipient of recipients) {
      const id = parseAccountId(recipient);
      if (!id.ok)
        throw grpcError(status.INVALID_ARGUMENT, `message: recipient ${recipient} is not an account id`);
    }
    await this.authorize(recipients, request.combinedAccessKey);
    await this.limits.takeEach(MULTI_RECIPIENT_LIMIT_AFTER_ACCESS, recipients);
    return this.relay.sendMultiRecipient({
      message: request.message,
      clientTimestampMs: request.clientTimestampMs,
      ephemeral: request.ephemeral,
    });
  }

  /** Passes when the XOR of the recipients' keys is `combined`, compared in constant time. */
  private async authorize(recipients: readonly string[], combined: Uint8Array): Promise<void> {
    const keys = await this.access.of(recipients);
    const expected = Buffer.alloc(ACCESS_KEY_BYTES);
    let complete = true;
    for (const access of keys) {
      if (access === undefined) complete = false;
      else if (access.unrestrictedUnidentifiedAccess) continue;
      else if (access.unidentifiedAccessKey.length !== ACCESS_KEY_BYTES) complete = false;
      else for (let i = 0; i < ACCESS_KEY_BYTES; i++) expected[i] ^= access.unidentifiedAccessKey[i] ?? 0;
    }
    // Compared even when a recipient is missing, so the time taken does not tell which refusal it is.
    const matches = timingSafeEqual(expected, combined);
    if (!complete || !matches) throw refused();
  }
}
