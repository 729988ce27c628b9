import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { Client, Metadata, status, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { CONTRACTS, mutualTlsCredentials } from '@sotto/contracts';
import {
  BackupStoreServiceService,
  CreateUploadRequest as CreateUpload,
  UploadChunksRequest as UploadChunks,
  type CancelUploadResponse,
  type CreateUploadRequest,
  type CreateUploadResponse,
  type DownloadBackupRequest,
  type DownloadBackupResponse,
  type GetUploadResponse,
  type ListBackupsResponse,
  type UploadChunksRequest,
  type UploadChunksResponse,
} from '@sotto/contracts/generated/sotto/backup/v1/backup';
import pino from 'pino';
import { Observable, reduce, tap } from 'rxjs';
import { prepareLocalPki } from '@sotto/platform/tls';
import {
  decodeOrRefuse,
  GrpcService,
  packageDefinitionOf,
  UndecodableRequest,
  type GrpcController,
} from './contract';
import { GrpcExceptionFilter, grpcError } from './errors';
import { createGrpcMicroservice } from './microservice';
import { serverCredentials } from './tls';
import { createUpstreamClient, useServiceIdentity, type UpstreamClient } from './upstream';

const sha256 = new Uint8Array(32).fill(7);

// Not the harness's freePort: the test harness itself depends on this library.
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A backup store that keeps nothing: enough to carry every kind of call through the contract. */
@Controller()
@GrpcService(BackupStoreServiceService)
class EchoStore implements GrpcController<typeof BackupStoreServiceService> {
  /** Every request a handler was given, to show which ones never reached it. */
  static readonly seen: unknown[] = [];

  createUpload(request: CreateUploadRequest): CreateUploadResponse {
    EchoStore.seen.push(request);
    if (request.accountId === 'bad') throw grpcError(status.INVALID_ARGUMENT, 'account_id: is bad');
    return { uploadId: `upload-of-${request.accountId}-${request.size}`, maxChunkSize: 4, expiresAtMs: '9' };
  }

  uploadChunks(requests: Observable<UploadChunksRequest>): Observable<UploadChunksResponse> {
    return requests.pipe(
      tap((message) => EchoStore.seen.push(message)),
      reduce(
        (answer: UploadChunksResponse, message) => ({
          ...answer,
          received: String(Number(answer.received) + (message.chunk?.length ?? 0)),
        }),
        { received: '0', complete: true, version: { version: '1', size: '0', sha256, createdAtMs: '1' } },
      ),
    );
  }

  getUpload(): GetUploadResponse {
    return { received: '0', size: '1', complete: false, expiresAtMs: '2' };
  }

  cancelUpload(): CancelUploadResponse {
    return {};
  }

  listBackups(): ListBackupsResponse {
    return {
      versions: [],
      quotaBytes: '5',
      usedBytes: '0',
      reservedBytes: '0',
      uploads: [],
      versionsKept: 2,
    };
  }

  downloadBackup(
    request: DownloadBackupRequest,
    _metadata: Metadata,
    _call: ServerWritableStream<DownloadBackupRequest, DownloadBackupResponse>,
  ): Observable<DownloadBackupResponse> {
    return new Observable((subscriber) => {
      for (let offset = Number(request.offset); offset < 3; offset++) {
        subscriber.next({ offset: String(offset), data: new Uint8Array([offset]) });
      }
      subscriber.complete();
    });
  }
}

describe('contracts on NestJS and grpc-js', () => {
  let app: INestMicroservice;
  let store: UpstreamClient<typeof BackupStoreServiceService>;
  let address: string;
  let files: (name: string) => { ca: string; cert: string; key: string };
  const tlsDir = mkdtempSync(join(tmpdir(), 'sotto-contract-tls-'));

  beforeAll(async () => {
    address = `127.0.0.1:${await freePort()}`;
    // Over mutual TLS, as every call between services is: the store as itself, the client as the gateway.
    const pki = await prepareLocalPki({
      dir: tlsDir,
      servers: ['backup-store', 'gateway', 'presence'],
      clients: [],
    });
    files = (name: string) => ({
      ca: pki.ca,
      cert: join(tlsDir, `${name}.crt`),
      key: join(tlsDir, `${name}.key`),
    });
    @Module({ controllers: [EchoStore] })
    class TestModule {}
    app = await createGrpcMicroservice(TestModule, false, {
      url: address,
      package: 'sotto.backup.v1',
      packageDefinition: packageDefinitionOf([BackupStoreServiceService]),
      credentials: serverCredentials('backup-store', files('backup-store'), { publicApi: false }),
    });
    app.useGlobalFilters(new GrpcExceptionFilter(pino({ level: 'silent' })));
    await app.listen();
    useServiceIdentity(files('gateway'));
    store = createUpstreamClient('backup-store', BackupStoreServiceService, address);
  });

  afterAll(async () => {
    store?.close();
    await app?.close();
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it('answers a unary call in the generated types, 64-bit numbers as strings', async () => {
    expect(await store.createUpload({ accountId: 'a1', size: '12345678901234', sha256 })).toEqual({
      uploadId: 'upload-of-a1-12345678901234',
      maxChunkSize: 4,
      expiresAtMs: '9',
    });
  });

  it('passes an error about the request through with its code and message', async () => {
    await expect(store.createUpload({ accountId: 'bad', size: '1', sha256 })).rejects.toMatchObject({
      error: { code: status.INVALID_ARGUMENT, message: 'account_id: is bad' },
    });
  });

  it('carries a client stream and a server stream', async () => {
    const uploaded = await new Promise<UploadChunksResponse | undefined>((resolve, reject) => {
      const call = store.uploadChunks(new Metadata(), {}, (error, response) =>
        error ? reject(error) : resolve(response),
      );
      call.write({ start: { accountId: 'a1', uploadId: 'u', offset: '0' } });
      call.write({ chunk: new Uint8Array([1, 2, 3]) });
      call.write({ chunk: new Uint8Array([4, 5]) });
      call.end();
    });
    expect(uploaded?.received).toBe('5');

    const chunks: DownloadBackupResponse[] = [];
    const download = store.downloadBackup({ accountId: 'a1', version: '0', offset: '1' });
    download.on('data', (chunk: DownloadBackupResponse) => chunks.push(chunk));
    await new Promise((resolve) => download.on('end', resolve));
    expect(chunks.map((chunk) => [chunk.offset, [...chunk.data]])).toEqual([
      ['1', [1]],
      ['2', [2]],
    ]);
  });

  it('reports a service that is not there as UNAVAILABLE, naming it', async () => {
    const gone = createUpstreamClient(
      'backup-store',
      BackupStoreServiceService,
      `127.0.0.1:${await freePort()}`,
    );
    try {
      await expect(gone.listBackups({ accountId: 'a1' })).rejects.toMatchObject({
        error: { code: status.UNAVAILABLE, message: 'backup-store is unavailable; try again' },
      });
    } finally {
      gone.close();
    }
  });

  it('passes PERMISSION_DENIED through when the caller is not one the topology allows', async () => {
    useServiceIdentity(files('presence'));
    const asPresence = createUpstreamClient('backup-store', BackupStoreServiceService, address);
    try {
      await expect(asPresence.listBackups({ accountId: 'a1' })).rejects.toMatchObject({
        error: {
          code: status.PERMISSION_DENIED,
          message: 'caller: presence may not call /sotto.backup.v1.BackupStoreService/ListBackups',
        },
      });
    } finally {
      asPresence.close();
      useServiceIdentity(files('gateway'));
    }
  });

  it('will not call a server whose certificate names another service than the one it meant', async () => {
    // The backup store's address, called as if it were the key vault's.
    const impostor = createUpstreamClient('key-vault', BackupStoreServiceService, address);
    try {
      await expect(impostor.listBackups({ accountId: 'a1' })).rejects.toMatchObject({
        error: { code: status.UNAVAILABLE, message: 'key-vault is unavailable; try again' },
      });
    } finally {
      impostor.close();
    }
  });

  it('refuses, at start-up, a controller that lacks a method of its service', () => {
    expect(() => {
      @GrpcService(BackupStoreServiceService)
      class Partial {
        createUpload(): void {}
      }
      return Partial;
    }).toThrow('Partial does not implement sotto.backup.v1.BackupStoreService.uploadChunks');
  });

  it('keeps the service name and method paths of the contract', () => {
    const definition = packageDefinitionOf([BackupStoreServiceService]);
    expect(Object.keys(definition)).toEqual(['sotto.backup.v1.BackupStoreService']);
    expect(definition['sotto.backup.v1.BackupStoreService']?.createUpload?.path).toBe(
      '/sotto.backup.v1.BackupStoreService/CreateUpload',
    );
  });
  describe('a request that does not decode', () => {
    /** The store's address as a plain grpc-js client, sending bytes as they are. */
    let raw: Client;
    const bytes = (value: Buffer): Buffer => value;

    beforeAll(() => {
      raw = new Client(address, mutualTlsCredentials(files('gateway'), 'backup-store'));
    });

    afterAll(() => raw?.close());

    function unary(path: string, body: Buffer): Promise<ServiceError | null> {
      return new Promise((resolve) => {
        raw.makeUnaryRequest(path, bytes, bytes, body, new Metadata(), {}, (error) => resolve(error));
      });
    }

    function clientStream(path: string, messages: Buffer[]): Promise<ServiceError | null> {
      return new Promise((resolve) => {
        const call = raw.makeClientStreamRequest(path, bytes, bytes, new Metadata(), {}, (error) =>
          resolve(error),
        );
        messages.forEach((message) => call.write(message));
        call.end();
      });
    }

    /** CreateUploadRequest with `account_id` holding these bytes. */
    const createUpload = (accountId: Uint8Array): Buffer =>
      Buffer.from(
        new BinaryWriter().tag(1, WireType.LengthDelimited).bytes(accountId).uint32(16).uint32(7).finish(),
      );

    it('answers a body that is not protobuf with INVALID_ARGUMENT, before the handler', async () => {
      const before = EchoStore.seen.length;
      // A field 1 that says 100 bytes follow, and then ends.
      const error = await unary(
        '/sotto.backup.v1.BackupStoreService/CreateUpload',
        Buffer.from([0x0a, 0x64, 1]),
      );
      expect(error).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'request: not a valid protobuf message (premature EOF)',
      });
      expect(EchoStore.seen).toHaveLength(before);
    });

    it.each([
      ['a lone continuation byte', [0x61, 0x80]],
      ['a truncated sequence', [0xe2, 0x82]],
      ['an overlong encoding of "/"', [0xc0, 0xaf]],
      ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ])('refuses a string field holding %s, instead of passing on U+FFFD', async (_case, utf8) => {
      const before = EchoStore.seen.length;
      const error = await unary(
        '/sotto.backup.v1.BackupStoreService/CreateUpload',
        createUpload(new Uint8Array(utf8)),
      );
      expect(error).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'request: a string field is not valid UTF-8',
      });
      expect(EchoStore.seen).toHaveLength(before);
    });

    it('accepts every valid string, U+FFFD and a leading byte-order mark included', async () => {
      const accountId = '\uFEFFa\uFFFDé😀';
      const error = await unary(
        '/sotto.backup.v1.BackupStoreService/CreateUpload',
        createUpload(new TextEncoder().encode(accountId)),
      );
      expect(error).toBeNull();
      expect(EchoStore.seen.at(-1)).toMatchObject({ accountId });
    });

    it('ends a client stream at the message that does not decode, nested fields included', async () => {
      const before = EchoStore.seen.length;
      // UploadChunksRequest.start (field 1) with upload_id (field 2) holding these bytes.
      const start = (uploadId: Uint8Array): Buffer =>
        Buffer.from(
          new BinaryWriter()
            .tag(1, WireType.LengthDelimited)
            .fork()
            .tag(2, WireType.LengthDelimited)
            .bytes(uploadId)
            .join()
            .finish(),
        );
      const error = await clientStream('/sotto.backup.v1.BackupStoreService/UploadChunks', [
        Buffer.from(UploadChunks.encode({ chunk: new Uint8Array([1]) }).finish()),
        start(new Uint8Array([0xff])),
        Buffer.from(UploadChunks.encode({ chunk: new Uint8Array([2]) }).finish()),
      ]);
      expect(error).toMatchObject({
        code: status.INVALID_ARGUMENT,
        details: 'request: a string field is not valid UTF-8',
      });
      expect(EchoStore.seen.slice(before)).toEqual([{ chunk: Buffer.from([1]) }]);
    });
  });

  it('answers a call with hundreds of metadata entries, where HTTP/2 would reset it (sometimes as INTERNAL)', async () => {
    // Node's default of 128 entries answered with a stream reset that, on a busy connection,
    // carried INTERNAL_ERROR: the fuzzer met it as an INTERNAL answer from the gateway.
    const metadata = new Metadata();
    for (let i = 0; i < 600; i++) metadata.set(`x-clutter-${i}`, `value ${i}`);
    expect(await store.createUpload({ accountId: 'a1', size: '1', sha256 }, metadata)).toMatchObject({
      uploadId: 'upload-of-a1-1',
    });
  });

  describe('decodeOrRefuse', () => {
    const everyMethod = Object.values(CONTRACTS).flatMap((contract) =>
      contract.definitions.flatMap((definition) => Object.values(definition)),
    );

    it('decodes what the generated codec encoded, as the codec does', () => {
      const request = { accountId: 'a1', size: '12345678901234', sha256: new Uint8Array([1, 2]) };
      const decode = decodeOrRefuse(BackupStoreServiceService.createUpload.requestDeserialize);
      expect(decode(Buffer.from(CreateUpload.encode(request).finish()))).toEqual(
        BackupStoreServiceService.createUpload.requestDeserialize(
          Buffer.from(CreateUpload.encode(request).finish()),
        ),
      );
    });

    it.each([
      ['a truncated varint', [0x08, 0xff]],
      ['a length past the end', [0x0a, 0x05, 0x61]],
      ['wire type 7', [0x0f]],
      ['an end-group tag with no start', [0x0c]],
      ['field number 0', [0x00]],
      ['field number 0 after a field', [0x10, 0x01, 0x00, 0x0a]],
      ['groups nested deeper than the limit', [...Array<number>(200).fill(0x0b)]],
    ])('refuses %s in every method of every contract, without throwing', (_case, body) => {
      for (const method of everyMethod) {
        const decoded = decodeOrRefuse(method.requestDeserialize)(Buffer.from(body));
        expect([method.path, decoded]).toEqual([method.path, expect.any(UndecodableRequest)]);
      }
    });
  });
});
