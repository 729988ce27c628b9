import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { status, type ServiceError } from '@grpc/grpc-js';
import { PrivateKey } from '@signalapp/libsignal-client';
import { DeviceServiceClient } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { encodeSignedDeviceList, nextDeviceList, signDeviceList } from '../device-list';
import { explain, SottoError } from '../errors';
import { GROUPS_FILE, type GroupState } from '../group-state';
import { gatewayCredentials } from '../gateway-trust';
import { unary } from '../grpc';
import { generateDeviceKeys, publicDeviceKeys } from '../keys';
import { encodeLinkCode, linkFingerprint } from '../link-code';
import { Profile, type AccountFile, type HistoryEntry } from '../profile';
import {
  openProvisioning,
  PROVISIONING_MAX_BYTES,
  type KeptDeviceList,
  type Provisioning,
} from '../provisioning';
import { parseServerAddress } from '../server';
import type { Contacts } from './contacts';
import { DEVICE_LISTS_FILE } from './device-lists';
import type { NewDevice } from './enrolment';
import { REFILL, saveNewDevice } from './prekeys';

/** How many of the newest history entries `--history` sends a new device, at most. */
export const LINK_HISTORY_ENTRIES = 1000;
/** How long one WaitForLink call may wait before it is made again. */
const WAIT_CALL_MS = 30_000;

/** Every account-level thing a device knows, for a new device of its account. */
export function collectProvisioning(
  profile: Profile,
  account: Pick<AccountFile, 'accountId' | 'username' | 'identityKeyPair'>,
  deviceList: string,
  profileKey: Uint8Array | undefined,
  withHistory: boolean,
): Provisioning {
  const contacts = (profile.readJson('contacts.json') as Contacts | undefined) ?? { byName: {}, devices: {} };
  const identities: Record<string, string> = {};
  let files: string[] = [];
  try {
    files = readdirSync(join(profile.dir, 'identities')).filter((file) => !file.endsWith('.tmp'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  for (const accountId of files) {
    const key = profile.read(`identities/${accountId}`);
    if (key && accountId !== account.accountId) identities[accountId] = key.toString('base64');
  }
  const lists = (profile.readJson(DEVICE_LISTS_FILE) as Record<string, KeptDeviceList> | undefined) ?? {};
  const groups = Object.values(
    (profile.readJson(GROUPS_FILE) as { groups?: Record<string, { state: GroupState }> } | undefined)
      ?.groups ?? {},
  ).map((group) => group.state);
  const provisioning: Provisioning = {
    v: 1,
    accountId: account.accountId,
    username: account.username,
    identityKeyPair: account.identityKeyPair,
    ...(profileKey && { profileKey: Buffer.from(profileKey).toString('base64') }),
    deviceList,
    contacts: {
      byName: contacts.byName,
      identities,
      profileKeys: contacts.profileKeys ?? {},
      deviceLists: Object.fromEntries(Object.entries(lists).filter(([id]) => id !== account.accountId)),
    },
    ...(groups.length > 0 && { groups }),
  };
  if (!withHistory) return provisioning;
  // The newest entries that fit, oldest first.
  let history = profile.history().slice(-LINK_HISTORY_ENTRIES);
  const size = (entries: readonly HistoryEntry[]): number =>
    Buffer.byteLength(JSON.stringify({ ...provisioning, history: entries }));
  while (history.length > 0 && size(history) > PROVISIONING_MAX_BYTES)
    history = history.slice(Math.ceil(history.length / 10));
  return { ...provisioning, history };
}

/** What `link` tells its caller before it waits: the code to show, and the fingerprint to compare. */
export interface LinkPrompt {
  readonly code: string;
  readonly fingerprint: string;
  readonly expiresAt: Date;
}

/**
 * Makes this profile a new device of an existing account: asks for a link
 * token, shows the code (token + an ephemeral public key) through `onCode`,
 * waits up to `waitSeconds` for a device of the account to approve it, opens
 * what that device sealed to the ephemeral key (refusing an approval from
 * another account than `username`, or a device list that does not verify),
 * makes this device's own keys under the account identity key, signs the
 * list that adds it and completes the link. Nothing is written unless the
 * server completes it.
 */
export async function linkDevice(options: {
  profileDir: string;
  server: string;
  username: string;
  name: string;
  waitSeconds: number;
  ca?: string;
  onCode: (prompt: LinkPrompt) => void;
}): Promise<NewDevice> {
  const profile = new Profile(options.profileDir);
  if (profile.exists) {
    throw new SottoError(`${options.profileDir} already holds the account ${profile.account().username}`);
  }
  const username = options.username.toLowerCase();
  const server = parseServerAddress(options.server);
  const devices = new DeviceServiceClient(server, gatewayCredentials(server, { ca: options.ca }));
  try {
    const { token, expiresAtMs } = await unary(devices.createLink.bind(devices), {});
    const ephemeral = PrivateKey.generate();
    options.onCode({
      code: encodeLinkCode({ token, publicKey: ephemeral.getPublicKey() }),
      fingerprint: linkFingerprint(ephemeral.getPublicKey()),
      expiresAt: new Date(Number(expiresAtMs)),
    });
    const until = Math.min(Date.now() + options.waitSeconds * 1000, Number(expiresAtMs));
    let approved;
    for (;;) {
      const left = until - Date.now();
      if (left <= 0) {
        throw new SottoError(
          `no device of ${username} approved the link in ${options.waitSeconds} s; run \`sotto link ${username}\` again for a new code`,
          status.DEADLINE_EXCEEDED,
        );
      }
      try {
        approved = await unary(
          devices.waitForLink.bind(devices),
          { token },
          { deadlineMs: Math.min(left, WAIT_CALL_MS) },
        );
        break;
      } catch (error) {
        const code = (error as ServiceError).code;
        if (code === status.DEADLINE_EXCEEDED) continue;
        if (code === status.NOT_FOUND) {
          throw new SottoError(
            `the link code expired or was refused; run \`sotto link ${username}\` again for a new code`,
            code,
          );
        }
        throw error;
      }
    }
    const opened = openProvisioning(approved.provisioning, ephemeral, token, {
      username,
      accountId: approved.accountId,
    });
    const generated = generateDeviceKeys(REFILL, opened.identity);
    const list = nextDeviceList(opened.deviceList, {
      add: { deviceId: approved.deviceId, registrationId: generated.registrationId },
    });
    const signed = signDeviceList(list, opened.identity.privateKey);
    const completed = await unary(devices.completeLink.bind(devices), {
      token,
      device: publicDeviceKeys(generated),
      deviceList: signed,
      name: options.name,
    });
    if (completed.accountId !== approved.accountId || completed.deviceId !== approved.deviceId) {
      throw new SottoError('the server completed the link as another device than it approved');
    }
    const { provisioning } = opened;
    saveProvisioning(profile, provisioning, encodeSignedDeviceList(signed), list.version);
    const account = saveNewDevice(profile, generated, { username, ...completed });
    return { profile, server, account };
  } catch (error) {
    throw explain(error, server);
  } finally {
    devices.close();
  }
}

/** Writes what the approving device sent into the new profile: contacts, trusted keys, lists, profile key, history. */
function saveProvisioning(
  profile: Profile,
  provisioning: Provisioning,
  ownList: string,
  version: bigint,
): void {
  Profile.create(profile.dir);
  const { contacts } = provisioning;
  for (const [accountId, key] of Object.entries(contacts.identities)) {
    // An account id names a file: one that could name another path is dropped.
    if (/^[A-Za-z0-9-]{1,64}$/.test(accountId))
      profile.write(`identities/${accountId}`, Buffer.from(key, 'base64'));
  }
  const book: Contacts = { byName: contacts.byName, devices: {}, profileKeys: contacts.profileKeys };
  profile.writeJson('contacts.json', book);
  profile.writeJson(DEVICE_LISTS_FILE, {
    ...contacts.deviceLists,
    [provisioning.accountId]: { list: ownList, highest: version.toString() },
  });
  if (provisioning.profileKey !== undefined) {
    // The approving device announced it already.
    profile.writeJson('profile-key.json', { key: provisioning.profileKey, accessKeySet: true });
  }
  for (const entry of provisioning.history ?? []) profile.appendHistory(entry);
  // The groups' states; this device makes its own sender keys, and members send it theirs.
  const groups = Object.fromEntries((provisioning.groups ?? []).map((state) => [state.id, { state }]));
  profile.writeJson(GROUPS_FILE, { groups, received: {} });
}
