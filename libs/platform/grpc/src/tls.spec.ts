import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TLSSocket } from 'node:tls';
import {
  Server,
  ServerCredentials,
  ServerInterceptingCall,
  status,
  type ServerInterceptor,
  type ServiceError,
} from '@grpc/grpc-js';
import { mutualTlsCredentials, type PeerIdentity, type TlsFiles } from '@sotto/contracts';
import {
  BackupStoreServiceClient,
  BackupStoreServiceService,
  ListBackupsResponse,
} from '@sotto/contracts/generated/sotto/backup/v1/backup';
import { prepareLocalPki } from '@sotto/platform/tls';
import { serverCredentials, topologyInterceptor, type Refusal } from './tls';

// The topology lets the gateway list backups, and neither presence nor the relay.
const LIST_BACKUPS = '/sotto.backup.v1.BackupStoreService/ListBackups';
const listed = ListBackupsResponse.fromPartial({ quotaBytes: '1' });

/** A backup store that answers ListBackups, over mutual TLS; the other methods are grpc-js' UNIMPLEMENTED. */
async function startStore(
  credentials: ServerCredentials,
  interceptors: ServerInterceptor[] = [],
): Promise<{ server: Server; address: string }> {
  const server = new Server({ interceptors });
  server.addService(BackupStoreServiceService, {
    listBackups: (_call: unknown, callback: (error: null, response: ListBackupsResponse) => void) =>
      callback(null, listed),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', credentials, (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return { server, address: `127.0.0.1:${port}` };
}

/** What ListBackups answers a client: 'listed', or the refusal's code and message. */
function listBackups(client: BackupStoreServiceClient): Promise<string> {
  return new Promise((resolve) =>
    client.listBackups({ accountId: 'a1' }, (error: ServiceError | null) =>
      resolve(error === null ? 'listed' : `${status[error.code]}: ${error.details}`),
    ),
  );
}

const refusedAs = (caller: PeerIdentity): string =>
  `PERMISSION_DENIED: caller: ${caller} may not call ${LIST_BACKUPS}`;

describe('the topology interceptor on a real mutual-TLS server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sotto-tls-spec-'));
  let files: (name: string) => TlsFiles;
  /** Each real read of a peer's certificate: the socket read, and the local port it had then. */
  const certificateReads: { socket: TLSSocket; localPort: number | undefined }[] = [];
  let spy: jest.SpiedFunction<TLSSocket['getPeerCertificate']>;
  const clients: BackupStoreServiceClient[] = [];

  /** A client with its own connection (no subchannel shared with another client) under this identity. */
  function clientAs(identity: string, address: string): BackupStoreServiceClient {
    const client = new BackupStoreServiceClient(
      address,
      mutualTlsCredentials(files(identity), 'backup-store'),
      {
        'grpc.use_local_subchannel_pool': 1,
      },
    );
    clients.push(client);
    return client;
  }

  /** The server-side TLS sockets whose peer certificate was read, once for each read. */
  function serverReadsOn(address: string): TLSSocket[] {
    const port = Number(address.split(':')[1]);
    return certificateReads.filter((read) => read.localPort === port).map((read) => read.socket);
  }

  beforeAll(async () => {
    const pki = await prepareLocalPki({
      dir,
      servers: ['backup-store', 'gateway', 'presence', 'message-relay'],
      clients: [],
    });
    files = (name) => ({ ca: pki.ca, cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  });

  beforeEach(() => {
    certificateReads.splice(0);
    // Its port is taken at the read: a closed socket has none.
    const read = Object.getOwnPropertyDescriptor(TLSSocket.prototype, 'getPeerCertificate')
      ?.value as TLSSocket['getPeerCertificate'];
    spy = jest.spyOn(TLSSocket.prototype, 'getPeerCertificate').mockImplementation(function (
      this: TLSSocket,
      ...args: Parameters<TLSSocket['getPeerCertificate']>
    ) {
      certificateReads.push({ socket: this, localPort: this.localPort });
      return read.apply(this, args);
    });
  });

  afterEach(() => {
    clients.splice(0).forEach((client) => client.close());
    spy.mockRestore();
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe('as the services serve it (serverCredentials)', () => {
    let store: { server: Server; address: string };
    const refusals: Refusal[] = [];

    beforeAll(async () => {
      store = await startStore(
        serverCredentials('backup-store', files('backup-store'), {
          publicApi: false,
          onRefused: (refusal) => refusals.push(refusal),
        }),
      );
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => store.server.tryShutdown(() => resolve()));
    });

    beforeEach(() => refusals.splice(0));

    it('gives clients with different certificates on their own connections each their own identity', async () => {
      const gateway = clientAs('gateway', store.address);
      const presence = clientAs('presence', store.address);
      const relay = clientAs('message-relay', store.address);
      // Interleaved, so that a cache that answered one connection with another's identity would show.
      for (let round = 0; round < 3; round++) {
        expect(await Promise.all([listBackups(gateway), listBackups(presence), listBackups(relay)])).toEqual([
          'listed',
          refusedAs('presence'),
          refusedAs('message-relay'),
        ]);
      }
      expect(await listBackups(presence)).toBe(refusedAs('presence'));
      expect(await listBackups(gateway)).toBe('listed');
      // Which connection the server turns to first is its own business; who it refuses is not.
      expect(refusals.map((refusal) => refusal.caller).sort()).toEqual([
        ...Array.from({ length: 3 }, () => 'message-relay'),
        ...Array.from({ length: 4 }, () => 'presence'),
      ]);
      // One read for each of the three connections, none for the 18 calls after it.
      const reads = serverReadsOn(store.address);
      expect(reads).toHaveLength(3);
      expect(new Set(reads).size).toBe(3);
    });

    it('reads the certificate once for many calls on one connection', async () => {
      const gateway = clientAs('gateway', store.address);
      const answers = await Promise.all(Array.from({ length: 50 }, () => listBackups(gateway)));
      expect(answers).toEqual(Array.from({ length: 50 }, () => 'listed'));
      expect(await listBackups(gateway)).toBe('listed');
      const reads = serverReadsOn(store.address);
      expect(reads).toHaveLength(1);
    });

    it('gives a new connection the identity of its own certificate after one with another closed', async () => {
      const gateway = clientAs('gateway', store.address);
      expect(await listBackups(gateway)).toBe('listed');
      const [first] = serverReadsOn(store.address);
      expect(first).toBeDefined();
      const closed = new Promise((resolve) => first?.once('close', resolve));
      gateway.close();
      await closed;

      const presence = clientAs('presence', store.address);
      expect(await listBackups(presence)).toBe(refusedAs('presence'));
      const second = clientAs('gateway', store.address);
      expect(await listBackups(second)).toBe('listed');
      const sockets = serverReadsOn(store.address);
      expect(sockets).toHaveLength(3);
      expect(new Set(sockets).size).toBe(3);
    });
  });

  describe('where the call hides its connection (the per-call read)', () => {
    let store: { server: Server; address: string };
    const refusals: Refusal[] = [];

    beforeAll(async () => {
      const tls = files('backup-store');
      // grpc-js' own mutual TLS, with an interceptor before the topology's: it hands the topology a
      // ServerInterceptingCall, which has no HTTP/2 stream to find the connection through.
      const hide: ServerInterceptor = (_method, call) => new ServerInterceptingCall(call);
      store = await startStore(
        ServerCredentials.createSsl(
          readFileSync(tls.ca),
          [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }],
          true,
        ),
        [hide, topologyInterceptor('backup-store', (refusal) => refusals.push(refusal))],
      );
    });

    afterAll(async () => {
      await new Promise<void>((resolve) => store.server.tryShutdown(() => resolve()));
    });

    it('reads the certificate for each call, and still tells each caller apart', async () => {
      const gateway = clientAs('gateway', store.address);
      const presence = clientAs('presence', store.address);
      for (let call = 0; call < 5; call++) {
        expect(await Promise.all([listBackups(gateway), listBackups(presence)])).toEqual([
          'listed',
          refusedAs('presence'),
        ]);
      }
      expect(refusals.map((refusal) => refusal.caller)).toEqual(Array.from({ length: 5 }, () => 'presence'));
      const reads = serverReadsOn(store.address);
      expect(reads).toHaveLength(10);
      expect(new Set(reads).size).toBe(2);
    });
  });
});
