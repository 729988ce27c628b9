import { IdentityKeyPair, type PrivateKey, type PublicKey } from '@signalapp/libsignal-client';
import { z } from 'zod';
import { bytes } from './client/bytes';
import { decodeSignedDeviceList, verifyDeviceList, type DeviceList } from './device-list';
import { SottoError } from './errors';
import { groupStateSchema, type GroupState } from './group-state';
import type { HistoryEntry } from './profile';

/** The `info` of libsignal's seal: what the sealed bytes are for, so they open as nothing else. */
const SEAL_INFO = 'sotto provisioning v1';
/** ApproveLink takes at most 1 MiB; the seal adds a key and a tag. */
export const PROVISIONING_MAX_BYTES = 1024 * 1024 - 1024;

/** A signed device list of an account as a profile keeps it: the list (base64 SignedDeviceList) and the highest version seen. */
export interface KeptDeviceList {
  readonly list: string;
  readonly highest: string;
}

/**
 * What an approving device sends a new device of its account, sealed to the
 * key in the link code: all it needs to be another device of the same
 * account. Everything account-level; nothing of the approving device's own
 * (its secret, registration id, prekeys, sessions).
 */
export interface Provisioning {
  readonly v: 1;
  readonly accountId: string;
  readonly username: string;
  /** Base64 of the serialized account IdentityKeyPair, which every device of the account holds. */
  readonly identityKeyPair: string;
  /** Base64 of the account's 32-byte profile key, if it has one. */
  readonly profileKey?: string;
  /** The account's current signed device list (base64 SignedDeviceList), which the new device extends. */
  readonly deviceList: string;
  readonly contacts: {
    /** username -> account id */
    readonly byName: Record<string, string>;
    /** account id -> base64 of the identity key trusted for it */
    readonly identities: Record<string, string>;
    /** account id -> base64 profile key */
    readonly profileKeys: Record<string, string>;
    readonly deviceLists: Record<string, KeptDeviceList>;
  };
  /** Recent history, oldest first, when the user chose to send it. */
  readonly history?: readonly HistoryEntry[];
  /** The groups the account is in, as the approving device holds them (states only; sender keys are per device). */
  readonly groups?: readonly GroupState[];
}

const base64 = z.base64();
const provisioningSchema = z.object({
  v: z.literal(1),
  accountId: z.string().min(1),
  username: z.string().min(1),
  identityKeyPair: base64,
  profileKey: base64.optional(),
  deviceList: base64,
  contacts: z.object({
    byName: z.record(z.string(), z.string()),
    identities: z.record(z.string(), base64),
    profileKeys: z.record(z.string(), base64),
    deviceLists: z.record(z.string(), z.object({ list: base64, highest: z.string().regex(/^\d{1,20}$/) })),
  }),
  history: z.array(z.looseObject({ kind: z.string() })).optional(),
  groups: z.array(groupStateSchema).optional(),
});

/** Seals the provisioning to the new device's key, bound to its link token (libsignal PublicKey.seal). */
export function sealProvisioning(provisioning: Provisioning, to: PublicKey, token: Uint8Array): Uint8Array {
  const plaintext = Buffer.from(JSON.stringify(provisioning), 'utf8');
  if (plaintext.length > PROVISIONING_MAX_BYTES) {
    throw new SottoError(`what would be sent to the new device is too large (${plaintext.length} bytes)`);
  }
  return to.seal(bytes(plaintext), SEAL_INFO, bytes(token));
}

/** The opened provisioning, with the identity key pair and the device list it carries, checked. */
export interface OpenedProvisioning {
  readonly provisioning: Provisioning;
  readonly identity: IdentityKeyPair;
  readonly deviceList: DeviceList;
}

/**
 * Opens what the approving device sent, with the new device's private key
 * and its token, and checks it: it must be of the account the user asked to
 * link to (`username`) and the server says approved it (`accountId`), and
 * its device list must verify under the identity key it carries. Throws a
 * SottoError saying what is wrong.
 */
export function openProvisioning(
  sealed: Uint8Array,
  key: PrivateKey,
  token: Uint8Array,
  expected: { username: string; accountId: string },
): OpenedProvisioning {
  let plaintext: Uint8Array;
  try {
    plaintext = key.open(bytes(sealed), SEAL_INFO, bytes(token));
  } catch {
    throw new SottoError("the approval cannot be opened: it was not sealed to this device's link code");
  }
  let parsed: z.infer<typeof provisioningSchema>;
  try {
    parsed = provisioningSchema.parse(JSON.parse(Buffer.from(plaintext).toString('utf8')));
  } catch {
    throw new SottoError('the approval cannot be read: it is not what a Sotto device sends');
  }
  const provisioning = parsed as Provisioning;
  const username = expected.username.toLowerCase();
  if (provisioning.username !== username) {
    throw new SottoError(
      `the link was approved by a device of ${provisioning.username}, not ${username}: not linking`,
    );
  }
  if (provisioning.accountId !== expected.accountId) {
    throw new SottoError(`the approval is of another account than the server linked: not linking`);
  }
  let identity: IdentityKeyPair;
  try {
    identity = IdentityKeyPair.deserialize(bytes(Buffer.from(provisioning.identityKeyPair, 'base64')));
  } catch {
    throw new SottoError('the approval cannot be read: its identity key pair is not one');
  }
  const deviceList = verifyDeviceList(decodeSignedDeviceList(provisioning.deviceList), identity.publicKey, {
    accountId: provisioning.accountId,
    name: username,
  });
  return { provisioning, identity, deviceList };
}
