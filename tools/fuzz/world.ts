/**
 * The accounts around a fuzz run, all made through the public API as a
 * client would: the fuzz account the fuzzer calls as, a friend, and a victim
 * whose envelopes, prekeys and backups must come through the run unchanged.
 * The victim has queued envelopes (from the friend), one-time prekeys, a
 * completed backup and an upload in progress; the fuzzer knows its account
 * id, device id, username, envelope GUIDs, upload id and public keys (as an
 * attacker could), never its device secret.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Metadata, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import {
  authorizationMetadata,
  type GeneratedDeviceKeys,
  generateDeviceKeys,
  publicDeviceKeys,
  SottoClient,
  unary,
} from '@sotto/client-sdk';
import type { Envelope } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  DeviceKeys,
  EcPreKey,
  KyberPreKey,
  SignedEcPreKey,
  type PreKeyBundle,
} from '@sotto/contracts/generated/sotto/common/v1/keys';
import {
  AccountServiceClient,
  BackupServiceClient,
  GetPreKeyBundleResponse,
  KeysServiceClient,
  MessagingServiceClient,
  RecoverAccountResponse,
  RotateDeviceSecretRequest,
  type ConnectResponse,
  type DownloadBackupResponse,
  type GetBackupStatusResponse,
  type GetBackupUploadResponse,
  type GetPreKeyCountResponse,
  type UploadBackupResponse,
} from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import type { Credential, Identities } from './metadata';
import type { Outcome } from './transport';
import type { Knowledge } from './wire';

/** Where the gateway is and how to trust it. */
export interface Gateway {
  readonly address: string;
  readonly credentials: ChannelCredentials;
  /** The CA file for the SDK's clients; undefined to let the SDK find it (SOTTO_CA, stack.json). */
  readonly ca?: string;
}

interface Account {
  readonly username: string;
  readonly credential: Credential;
  readonly keys: GeneratedDeviceKeys;
  readonly published: DeviceKeys;
}

/** What the victim holds, as the victim sees it through the public API. */
export interface VictimState {
  /** Its queued envelopes, by GUID. */
  readonly envelopes: ReadonlyMap<string, Envelope>;
  readonly backups: GetBackupStatusResponse;
  /** SHA-256 of the newest backup, as downloaded. */
  readonly download: string;
  readonly upload: GetBackupUploadResponse;
  readonly preKeys: GetPreKeyCountResponse;
}

const VICTIM_ONE_TIME_KEYS = 20;
const VICTIM_ENVELOPES = 5;
const BACKUP_BYTES = 96 * 1024;
/** How long the checks wait for the platform to answer, each. */
const CHECK_TIMEOUT_MS = 120_000;

function metadataOf(credential: Credential): Metadata {
  return authorizationMetadata({ ...credential, deviceSecret: credential.secret });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function equalBytes(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
}

/**
 * Calls the gateway until it answers something other than RESOURCE_EXHAUSTED,
 * waiting as long as `retry-after-ms` says (a fuzz run spends the failure
 * limits of the addresses and devices it plays with).
 */
async function patiently<T>(call: () => Promise<T>): Promise<T> {
  const giveUp = Date.now() + CHECK_TIMEOUT_MS;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      const failure = error as Partial<ServiceError>;
      const wait = Number(failure.metadata?.get('retry-after-ms')[0] ?? NaN);
      if (failure.code !== status.RESOURCE_EXHAUSTED || !Number.isFinite(wait) || Date.now() + wait > giveUp)
        throw error;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

export class World {
  private readonly accounts: AccountServiceClient;
  private readonly keys: KeysServiceClient;
  private readonly messaging: MessagingServiceClient;
  private readonly backups: BackupServiceClient;
  /** What went wrong for another account, seen while the run went on. */
  readonly problems: string[] = [];
  /** One-time prekeys of the victim handed out to the fuzzer, by public key. */
  private readonly handedOut = { ec: new Set<string>(), kyber: new Set<string>() };
  /** How often the fuzz account had to be replaced because its credential stopped working. */
  replacedFuzzAccounts = 0;
  private readonly fuzzAccountIds = new Set<string>();
  private fuzz!: Account;
  private friend!: Account;
  private victim!: Account;
  private victimEnvelopes: string[] = [];
  private victimUploadId = '';
  private victimBackupSha256 = Buffer.alloc(0);
  private fuzzUploadId = '';

  private constructor(
    private readonly gateway: Gateway,
    private readonly tag: string,
  ) {
    this.accounts = new AccountServiceClient(gateway.address, gateway.credentials);
    this.keys = new KeysServiceClient(gateway.address, gateway.credentials);
    this.messaging = new MessagingServiceClient(gateway.address, gateway.credentials);
    this.backups = new BackupServiceClient(gateway.address, gateway.credentials);
  }

  static async create(gateway: Gateway, say: (line: string) => void): Promise<World> {
    const world = new World(gateway, randomUUID().replace(/-/g, '').slice(0, 10));
    try {
      await world.setUp(say);
      return world;
    } catch (error) {
      world.close();
      throw error;
    }
  }

  close(): void {
    for (const client of [this.accounts, this.keys, this.messaging, this.backups]) client.close();
  }

  private async register(role: string, oneTimeKeys: number): Promise<Account> {
    const keys = generateDeviceKeys(oneTimeKeys);
    const published = publicDeviceKeys(keys);
    const username = `fz_${this.tag}_${role}`;
    const answer = await patiently(() =>
      unary(this.accounts.register.bind(this.accounts), {
        username,
        identityKey: Buffer.from(keys.identity.publicKey.serialize()),
        device: published,
      }),
    );
    return {
      username,
      keys,
      published,
      credential: { accountId: answer.accountId, deviceId: answer.deviceId, secret: answer.deviceSecret },
    };
  }

  private async setUp(say: (line: string) => void): Promise<void> {
    say('registering the fuzz account, a friend and a victim');
    this.fuzz = await this.register('fuzz', 5);
    this.fuzzAccountIds.add(this.fuzz.credential.accountId);
    this.friend = await this.register('friend', 5);
    this.victim = await this.register('victim', VICTIM_ONE_TIME_KEYS);

    say(`giving the victim ${VICTIM_ENVELOPES} queued envelopes, a backup and an upload in progress`);
    for (let i = 0; i < VICTIM_ENVELOPES; i++) {
      const sent = await unary(
        this.messaging.send.bind(this.messaging),
        {
          destinationAccountId: this.victim.credential.accountId,
          clientTimestampMs: String(Date.now()),
          ephemeral: false,
          envelopes: [
            {
              destinationDeviceId: this.victim.credential.deviceId,
              destinationRegistrationId: this.victim.keys.registrationId,
              type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
              content: Buffer.from(`envelope ${i} for the victim, ${randomUUID()}`),
            },
          ],
        },
        { metadata: metadataOf(this.friend.credential) },
      );
      this.victimEnvelopes.push(...sent.guids);
    }
    const backup = Buffer.from(Array.from({ length: BACKUP_BYTES }, (_, i) => (i * 31) & 0xff));
    this.victimBackupSha256 = createHash('sha256').update(backup).digest();
    await this.upload(this.victim.credential, backup, backup.length);
    this.victimUploadId = await this.upload(this.victim.credential, backup, backup.length / 2);
    this.fuzzUploadId = await this.upload(this.fuzz.credential, backup, 0);
  }

  /** Creates an upload of `content` and sends its first `send` bytes; resolves with the upload id. */
  private async upload(credential: Credential, content: Buffer, send: number): Promise<string> {
    const metadata = metadataOf(credential);
    const created = await unary(
      this.backups.createBackupUpload.bind(this.backups),
      { size: String(content.length), sha256: createHash('sha256').update(content).digest() },
      { metadata },
    );
    if (send === 0) return created.uploadId;
    await new Promise<UploadBackupResponse>((resolve, reject) => {
      const call = this.backups.uploadBackup(metadata, (error, response) =>
        error ? reject(error) : resolve(response),
      );
      call.write({ start: { uploadId: created.uploadId, offset: '0' } });
      for (let offset = 0; offset < send; offset += created.maxChunkSize) {
        call.write({ chunk: content.subarray(offset, Math.min(send, offset + created.maxChunkSize)) });
      }
      call.end();
    });
    return created.uploadId;
  }

  /** The fuzz account's credential now (a fuzzed RotateDeviceSecret may have changed it). */
  get credential(): Credential {
    return this.fuzz.credential;
  }

  identities(): Identities {
    return {
      self: this.fuzz.credential,
      others: [this.victim.credential, this.friend.credential].map(({ accountId, deviceId }) => ({
        accountId,
        deviceId,
      })),
    };
  }

  /** Everything the fuzzer knows of the others (and of itself), by field name. */
  knowledge(): Knowledge {
    const { victim, friend, fuzz } = this;
    const keys = victim.published;
    const ids = [victim, friend, fuzz].map((account) => account.credential);
    return {
      strings: {
        accountId: ids.map((id) => id.accountId),
        username: [victim.username, friend.username, fuzz.username, victim.username.toUpperCase()],
        uploadId: [this.victimUploadId, this.fuzzUploadId],
        guids: this.victimEnvelopes,
      },
      numbers: {
        deviceId: ids.map((id) => BigInt(id.deviceId)),
        registrationId: [BigInt(victim.keys.registrationId)],
        offset: [BigInt(BACKUP_BYTES / 2), BigInt(BACKUP_BYTES), BigInt(BACKUP_BYTES + 1)],
        size: [BigInt(BACKUP_BYTES)],
        version: [1n, 2n],
        keyId: (keys.oneTimePreKeys ?? []).slice(0, 3).map((key) => BigInt(key.keyId)),
      },
      bytes: {
        identityKey: [Buffer.from(victim.keys.identity.publicKey.serialize())],
        publicKey: [
          keys.signedPreKey?.publicKey,
          keys.kyberLastResortPreKey?.publicKey,
          keys.oneTimePreKeys[0]?.publicKey,
        ]
          .filter((key) => key !== undefined)
          .map((key) => Buffer.from(key)),
        signature: [keys.signedPreKey?.signature, keys.kyberLastResortPreKey?.signature]
          .filter((signature) => signature !== undefined)
          .map((signature) => Buffer.from(signature)),
        sha256: [this.victimBackupSha256],
        device: [Buffer.from(DeviceKeys.encode(keys).finish())],
        signedPreKey: keys.signedPreKey
          ? [Buffer.from(SignedEcPreKey.encode(keys.signedPreKey).finish())]
          : [],
        kyberLastResortPreKey: keys.kyberLastResortPreKey
          ? [Buffer.from(KyberPreKey.encode(keys.kyberLastResortPreKey).finish())]
          : [],
        oneTimePreKeys: keys.oneTimePreKeys
          .slice(0, 2)
          .map((key) => Buffer.from(EcPreKey.encode(key).finish())),
        oneTimeKyberPreKeys: keys.oneTimeKyberPreKeys
          .slice(0, 2)
          .map((key) => Buffer.from(KyberPreKey.encode(key).finish())),
      },
    };
  }

  /**
   * Learns from an answer: a prekey bundle of the victim must carry its own
   * keys and hand out each one-time key once; a rotated or recovered fuzz
   * account's new credential is used from now on; nobody else's account may
   * ever be recovered.
   */
  observe(path: string, asFuzzAccount: boolean, messages: readonly Buffer[], outcome: Outcome): void {
    if (outcome.code !== (status.OK as number)) return;
    const [response] = outcome.responses;
    if (path.endsWith('/GetPreKeyBundle') && response) {
      for (const bundle of GetPreKeyBundleResponse.decode(response).bundles) this.checkBundle(bundle);
    }
    if (path.endsWith('/RotateDeviceSecret') && asFuzzAccount && messages[0]) {
      const { newDeviceSecret } = RotateDeviceSecretRequest.decode(messages[0]);
      this.fuzz = { ...this.fuzz, credential: { ...this.fuzz.credential, secret: newDeviceSecret } };
    }
    if (path.endsWith('/RecoverAccount') && response) {
      const recovered = RecoverAccountResponse.decode(response);
      if (this.fuzzAccountIds.has(recovered.accountId)) {
        this.fuzz = {
          ...this.fuzz,
          credential: {
            accountId: recovered.accountId,
            deviceId: recovered.deviceId,
            secret: recovered.deviceSecret,
          },
        };
      } else if (
        [this.victim, this.friend].some((account) => account.credential.accountId === recovered.accountId)
      ) {
        this.problems.push(
          `RecoverAccount handed the account ${recovered.accountId} of another user to the fuzzer`,
        );
      }
    }
  }

  private checkBundle(bundle: PreKeyBundle): void {
    const victim = this.victim.published;
    if (bundle.accountId !== this.victim.credential.accountId) return;
    const where = `a prekey bundle of the victim (device ${bundle.deviceId})`;
    if (!equalBytes(bundle.identityKey, this.victim.keys.identity.publicKey.serialize())) {
      this.problems.push(`${where} carried another identity key`);
    }
    if (
      bundle.registrationId !== victim.registrationId ||
      !equalBytes(bundle.signedPreKey?.publicKey, victim.signedPreKey?.publicKey) ||
      !equalBytes(bundle.signedPreKey?.signature, victim.signedPreKey?.signature)
    ) {
      this.problems.push(`${where} carried another registration id or signed prekey`);
    }
    const ec = bundle.oneTimePreKey?.publicKey;
    if (ec) {
      const key = Buffer.from(ec).toString('base64');
      if (!victim.oneTimePreKeys.some((own) => equalBytes(own.publicKey, ec))) {
        this.problems.push(`${where} carried a one-time EC prekey the victim never uploaded`);
      } else if (this.handedOut.ec.has(key)) {
        this.problems.push(`${where} handed out a one-time EC prekey a second time`);
      }
      this.handedOut.ec.add(key);
    }
    const kyber = bundle.kyberPreKey?.publicKey;
    if (kyber && bundle.kyberLastResort) {
      if (!equalBytes(kyber, victim.kyberLastResortPreKey?.publicKey)) {
        this.problems.push(`${where} carried another last-resort Kyber prekey`);
      }
    } else if (kyber) {
      const key = Buffer.from(kyber).toString('base64');
      if (!victim.oneTimeKyberPreKeys.some((own) => equalBytes(own.publicKey, kyber))) {
        this.problems.push(`${where} carried a one-time Kyber prekey the victim never uploaded`);
      } else if (this.handedOut.kyber.has(key)) {
        this.problems.push(`${where} handed out a one-time Kyber prekey a second time`);
      }
      this.handedOut.kyber.add(key);
    }
  }

  /** Whether the fuzz account's credential still works; if not, a new fuzz account takes its place. */
  async ensureFuzzAccount(): Promise<void> {
    try {
      await unary(
        this.keys.getPreKeyCount.bind(this.keys),
        {},
        { metadata: metadataOf(this.fuzz.credential) },
      );
    } catch (error) {
      if ((error as ServiceError).code !== status.UNAUTHENTICATED) return;
      this.replacedFuzzAccounts++;
      this.fuzz = await this.register(`fuzz${this.replacedFuzzAccounts}`, 5);
      this.fuzzAccountIds.add(this.fuzz.credential.accountId);
    }
  }

  /**
   * The victim's state through its own eyes. Envelopes the fuzz accounts sent
   * it (a Send to someone else's account is what Send is for) are checked to
   * name their real sender and acknowledged, so they make room; the victim's
   * own are never acknowledged.
   */
  async victimState(moment: 'before' | 'after'): Promise<VictimState> {
    const metadata = () => metadataOf(this.victim.credential);
    const envelopes = await this.victimEnvelopesNow(metadata(), moment === 'before');
    const backups = await patiently(() =>
      unary(this.backups.getBackupStatus.bind(this.backups), {}, { metadata: metadata() }),
    );
    const upload = await patiently(() =>
      unary(
        this.backups.getBackupUpload.bind(this.backups),
        { uploadId: this.victimUploadId },
        { metadata: metadata() },
      ),
    );
    const preKeys = await patiently(() =>
      unary(this.keys.getPreKeyCount.bind(this.keys), {}, { metadata: metadata() }),
    );
    const download = await patiently(
      () =>
        new Promise<string>((resolve, reject) => {
          const parts: Uint8Array[] = [];
          const call = this.backups.downloadBackup({ version: '0', offset: '0' }, metadata(), {
            deadline: Date.now() + CHECK_TIMEOUT_MS,
          });
          call.on('data', (part: DownloadBackupResponse) => parts.push(part.data));
          call.on('error', reject);
          call.on('end', () => resolve(sha256(Buffer.concat(parts))));
        }),
    );
    return { envelopes, backups, download, upload, preKeys };
  }

  /**
   * Reads the victim's mailbox to the end without acknowledging its own
   * envelopes; before the run, until every envelope the friend sent has been
   * routed into it.
   */
  private victimEnvelopesNow(metadata: Metadata, waitForAll: boolean): Promise<Map<string, Envelope>> {
    const expected = new Set(this.victimEnvelopes);
    const found = new Map<string, Envelope>();
    return patiently(
      () =>
        new Promise((resolve, reject) => {
          let drained = false;
          const call = this.messaging.connect(metadata, { deadline: Date.now() + CHECK_TIMEOUT_MS });
          const done = (): void => {
            call.removeAllListeners('error');
            call.on('error', () => undefined);
            call.cancel();
            resolve(found);
          };
          // Queued envelopes may still be on their way through Kafka: wait for every one sent.
          const complete = (): boolean =>
            drained && (!waitForAll || [...expected].every((guid) => found.has(guid)));
          call.on('data', (message: ConnectResponse) => {
            const envelope = message.envelope;
            if (envelope) {
              if (expected.has(envelope.guid)) {
                found.set(envelope.guid, envelope);
              } else {
                if (!this.fuzzAccountIds.has(envelope.sourceAccountId) && envelope.sourceAccountId !== '') {
                  this.problems.push(
                    `the victim got an envelope (${envelope.guid}) naming ${envelope.sourceAccountId} as its sender, which is not a fuzz account`,
                  );
                }
                call.write({ ack: { guids: [envelope.guid] } });
              }
            }
            if (message.queueEmpty) drained = true;
            if (complete()) done();
          });
          call.on('error', reject);
          call.on('end', () => resolve(found));
        }),
    );
  }

  /** What differs between two states of the victim; the one-time prekeys the fuzzer was handed are accounted for. */
  compare(before: VictimState, after: VictimState): string[] {
    const problems: string[] = [];
    for (const [guid, envelope] of before.envelopes) {
      const now = after.envelopes.get(guid);
      if (now === undefined) problems.push(`the victim's envelope ${guid} is gone`);
      else if (JSON.stringify(toJson(now)) !== JSON.stringify(toJson(envelope))) {
        problems.push(`the victim's envelope ${guid} changed`);
      }
    }
    if (before.envelopes.size !== VICTIM_ENVELOPES) {
      problems.push(
        `the victim had ${before.envelopes.size} queued envelopes before the run, not ${VICTIM_ENVELOPES}`,
      );
    }
    if (JSON.stringify(toJson(after.backups)) !== JSON.stringify(toJson(before.backups))) {
      problems.push(
        `the victim's backups changed: ${JSON.stringify(toJson(before.backups))} became ${JSON.stringify(toJson(after.backups))}`,
      );
    }
    if (after.download !== before.download)
      problems.push("the victim's newest backup downloads as other bytes");
    if (JSON.stringify(toJson(after.upload)) !== JSON.stringify(toJson(before.upload))) {
      problems.push(`the victim's upload in progress changed: ${JSON.stringify(toJson(after.upload))}`);
    }
    const expected = {
      ecCount: before.preKeys.ecCount - this.handedOut.ec.size,
      kyberCount: before.preKeys.kyberCount - this.handedOut.kyber.size,
    };
    if (after.preKeys.ecCount !== expected.ecCount || after.preKeys.kyberCount !== expected.kyberCount) {
      problems.push(
        `the victim has ${after.preKeys.ecCount} one-time EC and ${after.preKeys.kyberCount} Kyber prekeys; ` +
          `${before.preKeys.ecCount} and ${before.preKeys.kyberCount} less the ${this.handedOut.ec.size} and ${this.handedOut.kyber.size} handed to the fuzzer make ${expected.ecCount} and ${expected.kyberCount}`,
      );
    }
    return problems;
  }

  /** How many of the victim's one-time prekeys bundles handed to the fuzzer. */
  get victimKeysHandedOut(): { ec: number; kyber: number } {
    return { ec: this.handedOut.ec.size, kyber: this.handedOut.kyber.size };
  }

  /**
   * A normal conversation on the fuzzed platform: two people register with
   * the SDK, one sends, the other receives and decrypts it. Resolves with
   * what went wrong, or undefined.
   */
  async conversation(): Promise<string | undefined> {
    const profiles = mkdtempSync(join(tmpdir(), 'sotto-fuzz-profiles-'));
    const clients: SottoClient[] = [];
    try {
      const register = async (role: string): Promise<SottoClient> => {
        const client = await SottoClient.register({
          profileDir: join(profiles, role),
          server: this.gateway.address,
          ca: this.gateway.ca,
          username: `fz_${this.tag}_${role}`,
        });
        clients.push(client);
        return client;
      };
      const alice = await register('alice');
      const bob = await register('bob');
      const text = `after the fuzzing, ${randomUUID()}`;
      await alice.send(bob.username, text);
      const stop = new AbortController();
      const received = await bob.receive({
        waitSeconds: 60,
        signal: stop.signal,
        onMessage: () => stop.abort(),
      });
      const got = received.map((message) => [message.from, message.text]);
      return JSON.stringify(got) === JSON.stringify([[alice.username, text]])
        ? undefined
        : `bob received ${JSON.stringify(got)} instead of alice's message`;
    } catch (error) {
      return `the conversation failed: ${(error as Error).message}`;
    } finally {
      clients.forEach((client) => client.close());
      rmSync(profiles, { recursive: true, force: true });
    }
  }
}

/** A comparable, printable form of a decoded message: bytes as base64. */
function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(toJson);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(
      Object.entries(value)
        .filter(([, field]) => field !== undefined)
        .map(([key, field]) => [key, toJson(field)]),
    );
  }
  return value;
}
