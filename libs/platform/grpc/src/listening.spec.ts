import 'reflect-metadata';
import { createServer } from 'node:net';
import { Controller, Module, type INestMicroservice } from '@nestjs/common';
import { credentials, Metadata, status, type Server, type ServiceError } from '@grpc/grpc-js';
import {
  MessagingServiceClient,
  MessagingServiceService,
  type SendRequest,
  type SendResponse,
  type SendMultiRecipientResponse,
  SendSealedResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import pino from 'pino';
import { Registry } from 'prom-client';
import { GrpcService, packageDefinitionOf, type GrpcController } from './contract';
import { Direct, serveDirectMethods } from './direct';
import { GrpcServerMetrics } from './metrics.interceptor';
import { createGrpcMicroservice, type BeforeListening } from './microservice';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Send is served directly, as the gateway's is; Connect is never called here. */
@Controller()
@GrpcService(MessagingServiceService)
class Messaging implements GrpcController<typeof MessagingServiceService, 'send' | 'connect'> {
  @Direct()
  send(request: SendRequest): Promise<SendResponse> {
    return Promise.resolve({ guids: [`for ${request.destinationAccountId}`], serverTimestampMs: '7' });
  }

  /** Served through NestJS, and never called here. */
  sendSealed(): Promise<SendSealedResponse> {
    return Promise.reject(new Error('not called in this spec'));
  }

  sendMultiRecipient(): Promise<SendMultiRecipientResponse> {
    return Promise.reject(new Error('not called in this spec'));
  }

  @Direct()
  connect(): Promise<void> {
    return Promise.reject(new Error('not called in this spec'));
  }
}

@Module({ controllers: [Messaging] })
class MessagingModule {}

const logger = pino({ level: 'silent' });

/** The messaging service on a port of its own; `beforeListening` runs as it starts. */
async function messagingServer(
  address: string,
  beforeListening: (app: INestMicroservice, server: Server) => Promise<void> | void,
): Promise<INestMicroservice> {
  // Called during app.listen(), once `app` exists.
  const hook: BeforeListening = (server) => beforeListening(app, server);
  const app = await createGrpcMicroservice(
    MessagingModule,
    false,
    {
      url: address,
      package: 'sotto.gateway.v1',
      packageDefinition: packageDefinitionOf([MessagingServiceService]),
    },
    hook,
  );
  return app;
}

/** One Send; the response, or the status it failed with. */
function send(
  client: MessagingServiceClient,
  options: { waitForReady?: boolean; deadlineMs?: number } = {},
): Promise<SendResponse | { code: status; details: string }> {
  const metadata = new Metadata();
  // Wait for the connection rather than fail while there is none (grpc-js takes it as a metadata option).
  metadata.setOptions({ waitForReady: options.waitForReady ?? false });
  return new Promise((resolve) =>
    client.send(
      { destinationAccountId: 'a1', clientTimestampMs: '1', ephemeral: false, envelopes: [] },
      metadata,
      { deadline: Date.now() + (options.deadlineMs ?? 10_000) },
      (error: ServiceError | null, response?: SendResponse) =>
        resolve(error ? { code: error.code, details: error.details } : (response as SendResponse)),
    ),
  );
}

const ANSWERED = { guids: ['for a1'], serverTimestampMs: '7' };

describe('a gRPC server with direct methods, starting', () => {
  let address: string;
  let client: MessagingServiceClient;
  let app: INestMicroservice | undefined;

  beforeEach(async () => {
    address = `127.0.0.1:${await freePort()}`;
    client = new MessagingServiceClient(address, credentials.createInsecure());
  });
  afterEach(async () => {
    client.close();
    await app?.close();
    app = undefined;
  });

  it('takes no connection before its direct methods have their handlers: a call meanwhile is UNAVAILABLE, never UNIMPLEMENTED', async () => {
    const whileStarting: unknown[] = [];
    app = await messagingServer(address, async (started, server) => {
      // NestJS has registered its handlers (an UNIMPLEMENTED placeholder for each direct method).
      whileStarting.push(await send(client, { deadlineMs: 2_000 }));
      serveDirectMethods(started, server, { metrics: new GrpcServerMetrics(new Registry()), logger });
    });
    await app.listen();
    expect(whileStarting).toEqual([{ code: status.UNAVAILABLE, details: expect.any(String) as unknown }]);
    // Trying again, as a client does on UNAVAILABLE, it gets its answer.
    expect(await send(client, { waitForReady: true })).toEqual(ANSWERED);
  });

  it('answers a client that called before it started, and waited for it, from the direct handler', async () => {
    app = await messagingServer(address, (started, server) => {
      serveDirectMethods(started, server, { metrics: new GrpcServerMetrics(new Registry()), logger });
    });
    const early = send(client, { waitForReady: true });
    await app.listen();
    expect(await early).toEqual(ANSWERED);
  });

  it('would answer UNIMPLEMENTED, which clients do not retry, for a direct method left without its handler', async () => {
    app = await messagingServer(address, () => undefined);
    await app.listen();
    expect(await send(client)).toEqual({
      code: status.UNIMPLEMENTED,
      details: 'The server does not implement the method send',
    });
  });
});
