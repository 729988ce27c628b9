import 'reflect-metadata';
import { EventEmitter, once } from 'node:events';
import { createServer } from 'node:net';
import { Controller, Injectable, Module, type INestMicroservice } from '@nestjs/common';
import {
  Client,
  credentials,
  Metadata,
  status,
  type Server,
  type ServerDuplexStream,
  type ServiceError,
} from '@grpc/grpc-js';
import {
  MessagingServiceClient,
  MessagingServiceService,
  type ConnectRequest,
  type ConnectResponse,
  type SendRequest,
  type SendResponse,
  type SendMultiRecipientResponse,
  SendSealedResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import pino from 'pino';
import { Registry } from 'prom-client';
import { GrpcService, packageDefinitionOf, type GrpcController } from './contract';
import { CALL_ADMISSION, Direct, serveDirectMethods, type CallAdmission, type DirectCall } from './direct';
import { GrpcExceptionFilter, grpcError } from './errors';
import { GrpcServerMetrics } from './metrics.interceptor';
import { createGrpcMicroservice } from './microservice';
import { throttled } from './refusals';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Refuses a caller whose metadata says `refuse`, as a rate limit would; remembers what it saw. */
@Injectable()
class Gatekeeper implements CallAdmission {
  readonly seen: DirectCall[] = [];

  admit(call: DirectCall): Promise<void> {
    this.seen.push(call);
    if (call.metadata.get('refuse').length > 0) return Promise.reject(throttled('too many calls', 1500));
    return Promise.resolve();
  }
}

/** Send answers or fails as the destination says; Connect answers each acknowledgement, or fails or ends on request. */
@Controller()
@GrpcService(MessagingServiceService)
class Messaging implements GrpcController<typeof MessagingServiceService, 'send' | 'connect'> {
  static readonly handled: string[] = [];
  static readonly events = new EventEmitter();

  @Direct()
  send(request: SendRequest): Promise<SendResponse> {
    Messaging.handled.push(`send ${request.destinationAccountId}`);
    if (request.destinationAccountId === 'bug') return Promise.reject(new Error('secret detail of a bug'));
    if (request.destinationAccountId === 'nobody') {
      return Promise.reject(grpcError(status.NOT_FOUND, 'destination_account_id: no such account'));
    }
    return Promise.resolve({ guids: ['g1'], serverTimestampMs: '7' });
  }

  /** Served through NestJS, and never called here. */
  sendSealed(): Promise<SendSealedResponse> {
    return Promise.reject(new Error('not called in this spec'));
  }

  sendMultiRecipient(): Promise<SendMultiRecipientResponse> {
    return Promise.reject(new Error('not called in this spec'));
  }

  @Direct()
  connect(call: ServerDuplexStream<ConnectRequest, ConnectResponse>): Promise<void> {
    Messaging.handled.push('connect');
    return new Promise((resolve, reject) => {
      call.on('data', (request: ConnectRequest) => {
        const guids = request.ack?.guids ?? [];
        if (guids.includes('fail')) reject(grpcError(status.FAILED_PRECONDITION, 'ack: fail'));
        else if (guids.includes('end')) resolve();
        else call.write({ queueEmpty: {} });
      });
      call.on('cancelled', () => {
        Messaging.events.emit('cancelled');
        resolve();
      });
    });
  }
}

describe('direct methods', () => {
  let app: INestMicroservice;
  let client: MessagingServiceClient;
  let address: string;
  const registry = new Registry();
  const logged: string[] = [];
  const gatekeeper = new Gatekeeper();

  beforeAll(async () => {
    address = `127.0.0.1:${await freePort()}`;
    @Module({ controllers: [Messaging], providers: [{ provide: CALL_ADMISSION, useValue: gatekeeper }] })
    class TestModule {}
    let server: Server | undefined;
    app = await createGrpcMicroservice(TestModule, false, {
      url: address,
      package: 'sotto.gateway.v1',
      packageDefinition: packageDefinitionOf([MessagingServiceService]),
      onLoadPackageDefinition: (_definition: unknown, grpcServer: Server) => {
        server = grpcServer;
      },
    });
    const logger = pino({ level: 'warn' }, { write: (line: string) => void logged.push(line) });
    app.useGlobalFilters(new GrpcExceptionFilter(logger));
    await app.listen();
    if (server === undefined) throw new Error('no server');
    serveDirectMethods(app, server, { metrics: new GrpcServerMetrics(registry), logger });
    client = new MessagingServiceClient(address, credentials.createInsecure());
  });

  afterAll(async () => {
    client?.close();
    await app?.close();
  });

  beforeEach(() => {
    Messaging.handled.length = 0;
    gatekeeper.seen.length = 0;
  });

  const send = (destinationAccountId: string, metadata = new Metadata()): Promise<SendResponse> =>
    new Promise((resolve, reject) =>
      client.send(
        { destinationAccountId, clientTimestampMs: '1', ephemeral: false, envelopes: [] },
        metadata,
        (error, response) => (error ? reject(error) : resolve(response)),
      ),
    );

  const refusing = (): Metadata => {
    const metadata = new Metadata();
    metadata.set('refuse', 'yes');
    return metadata;
  };

  async function handled(method: string, code: string): Promise<number> {
    const metric = await registry.getSingleMetric('sotto_grpc_server_handled_total')?.get();
    const value = metric?.values.find(
      ({ labels }) => labels['grpc_method'] === method && labels['grpc_code'] === code,
    );
    return value?.value ?? 0;
  }

  it('answers a unary call once admitted, telling the admission the method, the peer and the request', async () => {
    await expect(send('a1')).resolves.toEqual({ guids: ['g1'], serverTimestampMs: '7' });
    expect(Messaging.handled).toEqual(['send a1']);
    expect(gatekeeper.seen).toEqual([
      expect.objectContaining({
        path: MessagingServiceService.send.path,
        peer: expect.stringContaining('127.0.0.1') as unknown,
        request: expect.objectContaining({ destinationAccountId: 'a1' }) as unknown,
      }),
    ]);
    // The controller's own method, for what decorates it (the gateway's @Public()).
    expect(gatekeeper.seen[0]?.handler).toBe(
      Object.getOwnPropertyDescriptor(Messaging.prototype, 'send')?.value,
    );
    expect(await handled('Messaging.send', 'OK')).toBe(1);
  });

  it('refuses a unary call the admission refuses, with its status and trailers, before the handler runs and uncounted', async () => {
    const error = (await send('a1', refusing()).catch((failure: unknown) => failure)) as ServiceError;
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toBe('too many calls; retry in 2 s');
    expect(error.metadata.get('retry-after-ms')).toEqual(['1500']);
    expect(error.metadata.get('sotto-refusal')).toEqual(['rate-limited']);
    expect(Messaging.handled).toEqual([]);
    expect(await handled('Messaging.send', 'RESOURCE_EXHAUSTED')).toBe(0);
  });

  it("passes a handler's deliberate error through, and answers a bug with INTERNAL and a correlation id only", async () => {
    await expect(send('nobody')).rejects.toMatchObject({
      code: status.NOT_FOUND,
      details: 'destination_account_id: no such account',
    });
    const bug = (await send('bug').catch((failure: unknown) => failure)) as ServiceError;
    expect(bug.code).toBe(status.INTERNAL);
    const id = /^internal error \(correlation id ([0-9a-f-]{36})\)$/.exec(bug.details)?.[1];
    expect(id).toBeDefined();
    expect(logged.join('\n')).toContain(id);
    expect(logged.join('\n')).toContain('secret detail of a bug');
    expect(await handled('Messaging.send', 'NOT_FOUND')).toBe(1);
    expect(await handled('Messaging.send', 'INTERNAL')).toBe(1);
  });

  it('refuses a request that does not decode with INVALID_ARGUMENT, before the admission or the handler', async () => {
    const raw = new Client(address, credentials.createInsecure());
    try {
      const error = await new Promise<ServiceError | null>((resolve) =>
        raw.makeUnaryRequest(
          MessagingServiceService.send.path,
          (bytes: Buffer) => bytes,
          (bytes: Buffer) => bytes,
          Buffer.from([0x0a, 0x05, 0xff, 0xfe]),
          (failure) => resolve(failure),
        ),
      );
      expect(error?.code).toBe(status.INVALID_ARGUMENT);
      expect(gatekeeper.seen).toEqual([]);
      expect(Messaging.handled).toEqual([]);
    } finally {
      raw.close();
    }
  });

  it('serves a stream once admitted, with none of its messages in hand yet, and ends it with OK when the handler is done', async () => {
    const call = client.connect();
    const received: ConnectResponse[] = [];
    call.on('data', (message: ConnectResponse) => received.push(message));
    const ended = new Promise<{ code: number }>((resolve) => call.on('status', resolve));
    call.write({ ack: { guids: ['g1'] } });
    call.write({ ack: { guids: ['end'] } });
    expect((await ended).code).toBe(status.OK);
    expect(received).toEqual([{ queueEmpty: {} }]);
    expect(gatekeeper.seen).toEqual([
      expect.objectContaining({ path: MessagingServiceService.connect.path, request: undefined }),
    ]);
    expect(await handled('Messaging.connect', 'OK')).toBe(1);
  });

  it("refuses a stream the admission refuses with its status and trailers; fails one whose handler fails with the error's", async () => {
    const refused = client.connect(refusing());
    refused.on('data', () => undefined);
    refused.write({ ack: { guids: ['g1'] } });
    const error = await new Promise<ServiceError>((resolve) => refused.on('error', resolve));
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.metadata.get('retry-after-ms')).toEqual(['1500']);
    expect(Messaging.handled).toEqual([]);

    const failing = client.connect();
    failing.on('data', () => undefined);
    failing.write({ ack: { guids: ['fail'] } });
    await expect(new Promise((resolve) => failing.on('error', resolve))).resolves.toMatchObject({
      code: status.FAILED_PRECONDITION,
      details: 'ack: fail',
    });
    expect(await handled('Messaging.connect', 'FAILED_PRECONDITION')).toBe(1);
  });

  it('tells the handler of a stream the client cancelled, and counts it as nothing', async () => {
    const cancelled = once(Messaging.events, 'cancelled');
    const call = client.connect();
    call.on('error', () => undefined);
    const answered = new Promise((resolve) => call.once('data', resolve));
    call.write({ ack: { guids: ['g1'] } });
    await answered;
    call.cancel();
    await cancelled;
    expect(await handled('Messaging.connect', 'CANCELLED')).toBe(0);
  });
});
