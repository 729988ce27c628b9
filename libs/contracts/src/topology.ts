/**
 * Who may call what: for every method of every internal service, the
 * services allowed to call it. This table is the only place that says so.
 * The services enforce it on each call from the identity in the caller's
 * certificate (libs/platform/grpc), the Helm chart derives its
 * NetworkPolicies, its service addresses and its certificates from it
 * (helm/sotto/topology.json, written from here and checked by
 * helm/chart.spec.ts), and the local stack gives every service the
 * addresses of those it calls.
 *
 * The gateway is the public API: anyone may connect, and it authenticates
 * devices itself. Every service also serves grpc.health.v1 and server
 * reflection, which any certificate of the platform may call, the
 * operator's included; the operator may call nothing else.
 */
import { BackupStoreServiceService } from './generated/sotto/backup/v1/backup';
import { DirectoryServiceService } from './generated/sotto/directory/v1/directory';
import { PresenceServiceService } from './generated/sotto/presence/v1/presence';
import { RelayServiceService } from './generated/sotto/relay/v1/relay';
import { KeyVaultServiceService } from './generated/sotto/vault/v1/vault';

/** The six services, in the order they are listed to people. */
export const SERVICE_IDENTITIES = [
  'gateway',
  'prekey-directory',
  'message-relay',
  'presence',
  'backup-store',
  'key-vault',
] as const;

export type ServiceIdentity = (typeof SERVICE_IDENTITIES)[number];

/** Who runs the platform: may ask every service for its health and its reflection, nothing else. */
export const OPERATOR_IDENTITY = 'operator';

/** Every identity a certificate of the platform can name. */
export type PeerIdentity = ServiceIdentity | typeof OPERATOR_IDENTITY;

/** The identity a certificate names, as its URI SAN. */
export function spiffeIdOf(identity: PeerIdentity): string {
  return `spiffe://sotto/${identity}`;
}

/** Methods every certificate of the platform may call on any service. */
export const OPERATIONS_SERVICES = [
  'grpc.health.v1.Health',
  'grpc.reflection.v1.ServerReflection',
  'grpc.reflection.v1alpha.ServerReflection',
] as const;

type Callers = readonly ServiceIdentity[];
type MethodsOf<D> = { readonly [Method in keyof D]: Callers };

/** One internal service's rules: each method of its contract, by the path grpc-js routes on. */
function rules<D extends Readonly<Record<string, { readonly path: string }>>>(
  definition: D,
  callers: MethodsOf<D>,
): ReadonlyMap<string, Callers> {
  return new Map(
    Object.entries(definition).map(([method, shape]) => [shape.path, callers[method as keyof D]]),
  );
}

const GATEWAY: Callers = ['gateway'];

/**
 * Each internal service's methods and who may call them. The keys are the
 * generated definitions' method names, so a method added to a contract
 * does not compile until it is given its callers here.
 */
export const TOPOLOGY: Readonly<Record<Exclude<ServiceIdentity, 'gateway'>, ReadonlyMap<string, Callers>>> = {
  'prekey-directory': rules(DirectoryServiceService, {
    register: GATEWAY,
    authenticate: GATEWAY,
    lookupUsername: GATEWAY,
    // The relay checks every envelope's recipients against the device list.
    listDevices: ['gateway', 'message-relay'],
    listDevicesBatch: ['message-relay'],
    getPreKeyBundle: GATEWAY,
    getPreKeyCount: GATEWAY,
    uploadPreKeys: GATEWAY,
    setRecoveryCredential: GATEWAY,
    recoverAccount: GATEWAY,
    rotateDeviceSecret: GATEWAY,
    lookupAccount: GATEWAY,
    getIdentityKey: GATEWAY,
    setUnidentifiedAccess: GATEWAY,
    getUnidentifiedAccess: GATEWAY,
    getUnidentifiedAccessBatch: GATEWAY,
    createLink: GATEWAY,
    getLink: GATEWAY,
    approveLink: GATEWAY,
    completeLink: GATEWAY,
    listDeviceDetails: GATEWAY,
    removeDevice: GATEWAY,
    setDeviceList: GATEWAY,
    getDeviceList: GATEWAY,
    recordLastSeen: GATEWAY,
  }),
  'message-relay': rules(RelayServiceService, {
    send: GATEWAY,
    readMailbox: GATEWAY,
    ack: GATEWAY,
    sendBatch: GATEWAY,
    readMailboxBatch: GATEWAY,
    ackBatch: GATEWAY,
    sendMultiRecipient: GATEWAY,
  }),
  presence: rules(PresenceServiceService, {
    claimStream: GATEWAY,
    releaseStream: GATEWAY,
    heartbeat: GATEWAY,
    endStreams: GATEWAY,
    // The gateway that saw a wrong vault password tells the account's devices.
    reportVaultAttempt: GATEWAY,
    // The relay hands ephemeral envelopes to the gateways holding their devices' streams. (New mail
    // it announces itself, reading the presence registry in Redis: no call.)
    locate: ['message-relay'],
    deliverEphemeral: ['message-relay'],
  }),
  'backup-store': rules(BackupStoreServiceService, {
    createUpload: GATEWAY,
    uploadChunks: GATEWAY,
    getUpload: GATEWAY,
    cancelUpload: GATEWAY,
    listBackups: GATEWAY,
    downloadBackup: GATEWAY,
  }),
  'key-vault': rules(KeyVaultServiceService, {
    startRegistration: GATEWAY,
    finishRegistration: GATEWAY,
    startLogin: GATEWAY,
    finishLogin: GATEWAY,
    getVaultStatus: GATEWAY,
    deleteVault: GATEWAY,
    resetAttempts: GATEWAY,
  }),
};

function isOperations(path: string): boolean {
  const service = path.split('/')[1] ?? '';
  return (OPERATIONS_SERVICES as readonly string[]).includes(service);
}

/**
 * Whether `caller` may call the method at `path` (`/sotto.relay.v1.RelayService/Send`)
 * of `service`. Health and reflection are open to every identity; a method
 * the table does not list is open to none.
 */
export function mayCall(service: ServiceIdentity, caller: PeerIdentity, path: string): boolean {
  if (isOperations(path)) return true;
  if (service === 'gateway') return true;
  if (caller === OPERATOR_IDENTITY) return false;
  return TOPOLOGY[service].get(path)?.includes(caller) ?? false;
}

/** The services that call `service`: those the table allows at least one of its methods. */
export function callersOf(service: ServiceIdentity): ServiceIdentity[] {
  if (service === 'gateway') return [];
  const callers = new Set([...TOPOLOGY[service].values()].flat());
  return SERVICE_IDENTITIES.filter((identity) => callers.has(identity));
}

/** The services `caller` calls. */
export function calleesOf(caller: ServiceIdentity): ServiceIdentity[] {
  return SERVICE_IDENTITIES.filter((service) => callersOf(service).includes(caller));
}

/** The peer identity a certificate's subjectAltName (as Node prints it) names, if it names exactly one. */
export function identityFromSubjectAltName(subjectAltName: string | undefined): PeerIdentity | undefined {
  const uris = (subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice('URI:'.length));
  const identities: readonly PeerIdentity[] = [...SERVICE_IDENTITIES, OPERATOR_IDENTITY];
  const named = identities.filter((identity) => uris.includes(spiffeIdOf(identity)));
  return named.length === 1 ? named[0] : undefined;
}

/** The topology as the Helm chart reads it (helm/sotto/topology.json): who calls whom, and each method's callers. */
export function topologyDocument(): {
  services: Record<ServiceIdentity, { callers: ServiceIdentity[]; calls: ServiceIdentity[] }>;
  methods: Record<string, readonly ServiceIdentity[]>;
} {
  const services = Object.fromEntries(
    SERVICE_IDENTITIES.map((service) => [
      service,
      { callers: callersOf(service), calls: calleesOf(service) },
    ]),
  ) as Record<ServiceIdentity, { callers: ServiceIdentity[]; calls: ServiceIdentity[] }>;
  const methods = Object.fromEntries(Object.values(TOPOLOGY).flatMap((rules) => [...rules.entries()]));
  return { services, methods };
}
