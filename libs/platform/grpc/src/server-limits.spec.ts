import {
  connectivityState,
  type ChannelOptions,
  credentials,
  makeGenericClientConstructor,
  Server,
  ServerCredentials,
  status,
  type Client,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';
import { PUBLIC_SERVER_LIMITS, serverLimitOptions, type ServerLimits } from './server-limits';

const bytes = {
  serialize: (value: Buffer) => value,
  deserialize: (value: Buffer) => value,
};

/** Echo takes any bytes; Hold keeps a server stream open until the test lets it go. */
const definition: ServiceDefinition = {
  echo: {
    path: '/limits.Test/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  },
  hold: {
    path: '/limits.Test/Hold',
    requestStream: false,
    responseStream: true,
    requestSerialize: bytes.serialize,
    requestDeserialize: bytes.deserialize,
    responseSerialize: bytes.serialize,
    responseDeserialize: bytes.deserialize,
  },
};

type TestClient = Client & {
  echo(request: Buffer, callback: (error: ServiceError | null, reply?: Buffer) => void): void;
  hold(request: Buffer): NodeJS.ReadableStream & { cancel(): void };
};
const TestClient = makeGenericClientConstructor(definition, 'Test') as unknown as new (
  address: string,
  creds: ReturnType<typeof credentials.createInsecure>,
  options?: ChannelOptions,
) => TestClient;

/** A server with these limits, the way runService builds its options, and what it saw. */
async function serve(limits: Partial<ServerLimits>) {
  const server = new Server(serverLimitOptions({ ...PUBLIC_SERVER_LIMITS, ...limits }));
  const seen = { echoed: 0, holding: 0 };
  const held: ServerWritableStream<Buffer, Buffer>[] = [];
  server.addService(definition, {
    echo: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      seen.echoed++;
      callback(null, call.request);
    },
    hold: (call: ServerWritableStream<Buffer, Buffer>) => {
      seen.holding++;
      held.push(call);
      call.write(Buffer.from('started'));
      call.on('cancelled', () => seen.holding--);
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  const client = new TestClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return {
    client,
    seen,
    held,
    async close() {
      client.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}

const echo = (client: TestClient, body: Buffer) =>
  new Promise<Buffer>((resolve, reject) =>
    client.echo(body, (error, reply) => (error ? reject(error) : resolve(reply ?? Buffer.alloc(0)))),
  );

describe('explicit gRPC server limits', () => {
  it('refuses a request over the receive limit with RESOURCE_EXHAUSTED, before any handler runs', async () => {
    const server = await serve({ maxReceiveBytes: 1024 });
    try {
      expect(await echo(server.client, Buffer.alloc(1000, 1))).toHaveLength(1000);
      await expect(echo(server.client, Buffer.alloc(1025, 1))).rejects.toMatchObject({
        code: status.RESOURCE_EXHAUSTED,
      });
      expect(server.seen.echoed).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('lets one connection hold only so many streams at once; the rest wait their turn', async () => {
    const server = await serve({ maxConcurrentStreams: 3 });
    try {
      const calls = Array.from({ length: 5 }, () => server.client.hold(Buffer.alloc(0)));
      const started = calls.map(
        (call) =>
          new Promise<boolean>((resolve) => {
            call.once('data', () => resolve(true));
            call.on('error', () => resolve(false));
          }),
      );
      await Promise.all(started.slice(0, 3));
      // The other two are queued on the client: give them time they would need to start, then count.
      await echoAfterStreams(server.client);
      expect(server.seen.holding).toBe(3);
      calls[0]?.cancel();
      calls[1]?.cancel();
      expect(await Promise.all(started.slice(3))).toEqual([true, true]);
      calls.forEach((call) => call.cancel());
    } finally {
      await server.close();
    }
  });

  it('closes a connection that has had no call open for the idle time', async () => {
    const server = await serve({ maxIdleMs: 300 });
    try {
      await echo(server.client, Buffer.from('hi'));
      const channel = server.client.getChannel();
      expect(channel.getConnectivityState(false)).toBe(connectivityState.READY);
      // The server's GOAWAY takes the channel out of READY; it reconnects only when asked.
      await new Promise<void>((resolve, reject) => {
        const deadline = Date.now() + 10_000;
        const watch = (): void =>
          channel.watchConnectivityState(channel.getConnectivityState(false), deadline, (error) => {
            if (error) reject(error);
            else if (channel.getConnectivityState(false) === connectivityState.READY) watch();
            else resolve();
          });
        watch();
      });
      expect(await echo(server.client, Buffer.from('again'))).toEqual(Buffer.from('again'));
    } finally {
      await server.close();
    }
  });
});

/**
 * A round trip to the server after the streams were asked for, so that any
 * that were going to reach it have. A call on the same connection would wait
 * for a stream slot too, so it goes on a connection of its own.
 */
async function echoAfterStreams(client: TestClient): Promise<void> {
  const address = client
    .getChannel()
    .getTarget()
    .replace(/^ipv4:|^dns:/, '');
  const other = new TestClient(address, credentials.createInsecure(), {
    'grpc.use_local_subchannel_pool': 1,
  });
  try {
    await echo(other, Buffer.from('tick'));
  } finally {
    other.close();
  }
}
