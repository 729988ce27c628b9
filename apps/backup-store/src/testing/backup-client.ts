import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { type ChannelCredentials, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import {
  BackupStoreServiceClient,
  type CreateUploadResponse,
  type GetUploadResponse,
  type ListBackupsResponse,
  type UploadChunksRequest,
  type UploadChunksResponse,
} from '@sotto/contracts/generated/sotto/backup/v1/backup';
import type { BackupVersion } from '@sotto/contracts/generated/sotto/common/v1/backup';

export const MIB = 1024 * 1024;
const CHUNK = MIB;

export const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

/** An upload stream the test writes to, with backpressure, and may end, cancel or lose. */
export interface OpenUpload {
  /** Sends bytes as chunks of at most 1 MiB, waiting whenever gRPC's buffer is full. */
  send(bytes: Uint8Array): Promise<void>;
  /** Half-closes the stream and waits for the store's answer. */
  finish(): Promise<UploadChunksResponse>;
  cancel(): void;
  /** The store's answer or refusal. */
  readonly response: Promise<UploadChunksResponse>;
}

/** What the status code and message of a refused call were. */
export async function refusal(promise: Promise<unknown>): Promise<{ code: number; details: string }> {
  try {
    await promise;
  } catch (error) {
    const { code, details } = error as ServiceError;
    return { code, details };
  }
  throw new Error('expected the call to be refused');
}

/** The backup store's contract as a test drives it: one promise per call, streams as helpers. */
export class BackupTestClient {
  readonly raw: BackupStoreServiceClient;

  /** `channelCredentials`: mutual TLS as the caller the test plays, normally the gateway. */
  constructor(address: string, channelCredentials: ChannelCredentials) {
    this.raw = new BackupStoreServiceClient(address, channelCredentials, {
      'grpc.max_receive_message_length': 8 * MIB,
    });
  }

  close(): void {
    this.raw.close();
  }

  createUpload(accountId: string, size: number, digest: Uint8Array): Promise<CreateUploadResponse> {
    return new Promise((resolve, reject) =>
      this.raw.createUpload(
        { accountId, size: String(size), sha256: Buffer.from(digest) },
        (error, response) => (error ? reject(error) : resolve(response)),
      ),
    );
  }

  getUpload(accountId: string, uploadId: string): Promise<GetUploadResponse> {
    return new Promise((resolve, reject) =>
      this.raw.getUpload({ accountId, uploadId }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }

  cancelUpload(accountId: string, uploadId: string): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.raw.cancelUpload({ accountId, uploadId }, (error, response) =>
        error ? reject(error) : resolve(response),
      ),
    );
  }

  listBackups(accountId: string): Promise<ListBackupsResponse> {
    return new Promise((resolve, reject) =>
      this.raw.listBackups({ accountId }, (error, response) => (error ? reject(error) : resolve(response))),
    );
  }

  /** Opens an UploadChunks stream and sends its `start`. */
  openUpload(accountId: string, uploadId: string, offset: number): OpenUpload {
    let call!: ClientWritableStream<UploadChunksRequest>;
    const response = new Promise<UploadChunksResponse>((resolve, reject) => {
      call = this.raw.uploadChunks((error, answer) => (error ? reject(error) : resolve(answer)));
    });
    // A test that cancels or expects a refusal looks at `response` itself.
    response.catch(() => undefined);
    call.write({ start: { accountId, uploadId, offset: String(offset) } });
    const settled = response.then(
      () => undefined,
      () => undefined,
    );
    const write = async (message: UploadChunksRequest): Promise<void> => {
      // A stream the store already answered (a refusal) never drains.
      if (!call.write(message)) await Promise.race([once(call, 'drain'), settled]);
    };
    return {
      send: async (bytes) => {
        for (let at = 0; at < bytes.length; at += CHUNK) {
          await write({ chunk: Buffer.from(bytes.subarray(at, at + CHUNK)) });
        }
      },
      finish: () => {
        call.end();
        return response;
      },
      cancel: () => call.cancel(),
      response,
    };
  }

  /** Uploads `data` from `offset` to its end in one stream. */
  async upload(
    accountId: string,
    uploadId: string,
    data: Uint8Array,
    offset = 0,
  ): Promise<UploadChunksResponse> {
    const stream = this.openUpload(accountId, uploadId, offset);
    await stream.send(data.subarray(offset));
    return stream.finish();
  }

  /** Creates an upload for `data` and sends all of it: the version it became. */
  async backup(accountId: string, data: Uint8Array): Promise<{ uploadId: string; version: string }> {
    const { uploadId } = await this.createUpload(accountId, data.length, sha256(data));
    const answer = await this.upload(accountId, uploadId, data);
    if (!answer.complete || !answer.version) throw new Error(`upload ${uploadId} did not complete`);
    return { uploadId, version: answer.version.version };
  }

  /**
   * Downloads a version (0: the newest) from `offset`: the bytes joined, and
   * where each message said it starts (checked to follow on from the last).
   */
  download(
    accountId: string,
    version = 0,
    offset = 0,
  ): Promise<{ backup: BackupVersion | undefined; data: Buffer; offsets: number[] }> {
    return new Promise((resolve, reject) => {
      const stream = this.raw.downloadBackup({ accountId, version: String(version), offset: String(offset) });
      const pieces: Buffer[] = [];
      const offsets: number[] = [];
      let backup: BackupVersion | undefined;
      let next = offset;
      stream.on('data', (message: { offset: string; data: Buffer; backup?: BackupVersion }) => {
        if (offsets.length === 0) backup = message.backup;
        else if (message.backup) reject(new Error('backup set on a later message'));
        if (Number(message.offset) !== next)
          reject(new Error(`chunk at ${message.offset}, expected ${next}`));
        offsets.push(Number(message.offset));
        pieces.push(message.data);
        next += message.data.length;
      });
      stream.on('error', reject);
      stream.on('end', () => resolve({ backup, data: Buffer.concat(pieces), offsets }));
    });
  }
}
