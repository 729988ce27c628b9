import 'reflect-metadata';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { Metadata, status, type ServerWritableStream } from '@grpc/grpc-js';
import {
  BackupStoreServiceService,
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
import { Observable, reduce } from 'rxjs';
import { prepareLocalPki } from '@sotto/platform/tls';
import { GrpcService, packageDefinitionOf, type GrpcController } from './contract';
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
  createUpload(request: CreateUploadRequest): CreateUploadResponse {
    if (request.accountId === 'bad') throw grpcError(status.INVALID_ARGUMENT, 'account_id: is bad');
    return { uploadId: `upload-of-${request.accountId}-${request.size}`, maxChunkSize: 4, expiresAtMs: '9' };
  }

  uploadChunks(requests: Observable<UploadChunksRequest>): Observable<UploadChunksResponse> {
    return requests.pipe(
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
});
