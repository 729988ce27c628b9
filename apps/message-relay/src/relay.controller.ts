import { Controller, Logger } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import {
  envelopesTopic,
  MAILBOX_PAGE_MAX_BYTES,
  mailboxPageWorstCaseBytes,
  RELAY_BATCH_MAX_BYTES,
} from '@sotto/contracts';
import {
  RelayServiceService,
  type AckBatchRequest,
  type AckBatchResponse,
  type AckRequest,
  type AckResponse,
  type ReadMailboxBatchRequest,
  type ReadMailboxBatchResponse,
  type SendBatchRequest,
  type SendBatchResponse,
  type ReadMailboxRequest,
  type ReadMailboxResponse,
  type SendMultiRecipientRequest,
  type SendMultiRecipientResponse,
  type SendRequest,
  type SendResponse,
} from '@sotto/contracts/generated/sotto/relay/v1/relay';
import {
  answerEach,
  Direct,
  grpcError,
  GrpcService,
  refuse,
  requireAccountId,
  requireDeviceId,
  type GrpcController,
} from '@sotto/platform/grpc';
import { MailboxStore, type DeviceAddress } from './mailbox/mailbox.store';
import { SEALED, SendService } from './send/send.service';

const MAX_READ = 500;
/** The most envelope bytes one ReadMailbox answer carries: well under gRPC's 4 MiB message limit. */
export const MAX_READ_BYTES = MAILBOX_PAGE_MAX_BYTES;
const MAX_ACK = 1000;

function device(accountId: string, deviceId: number, prefix: string): DeviceAddress {
  return {
    accountId: requireAccountId(accountId, `${prefix}account_id`),
    deviceId: requireDeviceId(deviceId, `${prefix}device_id`),
  };
}

/**
 * gRPC in, gRPC out for the RelayService contract. The batched calls the
 * gateways make on the message path are served directly on grpc-js
 * (@Direct(): no NestJS per-call pipeline; the server's topology check still
 * admits only the services allowed to call them).
 */
@Controller()
@GrpcService(RelayServiceService)
export class RelayController implements GrpcController<
  typeof RelayServiceService,
  'sendBatch' | 'readMailboxBatch' | 'ackBatch' | 'sendMultiRecipient'
> {
  private readonly logger = new Logger(RelayController.name);

  constructor(
    private readonly sender: SendService,
    private readonly mailboxes: MailboxStore,
  ) {}

  send(request: SendRequest): Promise<SendResponse> {
    const { sourceAccountId, sourceDeviceId, sealed, ...message } = request;
    if (!sealed) return this.sender.send(device(sourceAccountId, sourceDeviceId, 'source_'), message);
    // A sealed send has no sender to keep: one named here would be stored with the envelopes.
    if (sourceAccountId !== '' || sourceDeviceId !== 0) {
      throw grpcError(
        status.INVALID_ARGUMENT,
        'source_account_id: must be empty on a sealed send, and source_device_id 0',
      );
    }
    return this.sender.send(SEALED, message);
  }

  async readMailbox(request: ReadMailboxRequest): Promise<ReadMailboxResponse> {
    const limit = Math.min(Math.max(request.limit, 1), MAX_READ);
    const after = Number(request.afterSequence);
    if (!Number.isSafeInteger(after) || after < 0) {
      throw grpcError(status.INVALID_ARGUMENT, 'after_sequence: must be a whole number');
    }
    const maxBytes = request.maxBytes === 0 ? MAX_READ_BYTES : Math.min(request.maxBytes, MAX_READ_BYTES);
    const { items, drained } = await this.mailboxes.read(
      device(request.accountId, request.deviceId, ''),
      after,
      limit,
      maxBytes,
    );
    return {
      envelopes: items.map((item) => ({
        sequence: String(item.sequence),
        envelope: envelopesTopic.decodeValue(item.envelope),
      })),
      drained,
    };
  }

  async ack(request: AckRequest): Promise<AckResponse> {
    if (request.guids.length > MAX_ACK) {
      throw refuse('too-many', `guids: at most ${MAX_ACK} per acknowledgement`);
    }
    return {
      deleted: await this.mailboxes.delete(device(request.accountId, request.deviceId, ''), request.guids),
    };
  }

  /** A group message in one upload; see SendService.sendMultiRecipient. */
  @Direct()
  sendMultiRecipient(request: SendMultiRecipientRequest): Promise<SendMultiRecipientResponse> {
    return this.sender.sendMultiRecipient(request);
  }

  @Direct()
  async sendBatch(request: SendBatchRequest): Promise<SendBatchResponse> {
    return { outcomes: await answerEach(request.sends, (send) => this.send(send), this.onBug) };
  }

  @Direct()
  async readMailboxBatch(request: ReadMailboxBatchRequest): Promise<ReadMailboxBatchResponse> {
    const worstCase = request.reads.reduce(
      (total, read) => total + mailboxPageWorstCaseBytes(read.maxBytes),
      0,
    );
    if (worstCase > RELAY_BATCH_MAX_BYTES) {
      throw refuse(
        'too-large',
        `reads: pages of up to ${worstCase} bytes in all, over the ${RELAY_BATCH_MAX_BYTES}-byte batch limit; ask for smaller pages or fewer reads`,
      );
    }
    return { outcomes: await answerEach(request.reads, (read) => this.readMailbox(read), this.onBug) };
  }

  @Direct()
  async ackBatch(request: AckBatchRequest): Promise<AckBatchResponse> {
    return { outcomes: await answerEach(request.acks, (ack) => this.ack(ack), this.onBug) };
  }

  private readonly onBug = (correlationId: string, error: unknown): void => {
    this.logger.error(
      `unhandled error in a batched call (correlation id ${correlationId}): ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
    );
  };
}
