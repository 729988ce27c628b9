import { randomBytes } from 'node:crypto';
import type { PrivateKey, PublicKey } from '@signalapp/libsignal-client';
import { z } from 'zod';
import { bytes } from './client/bytes';
import { SottoError } from './errors';

/** The most members a group may have, unless SOTTO_MAX_GROUP_MEMBERS says otherwise (Signal's figure). */
export const DEFAULT_MAX_GROUP_MEMBERS = 1000;

/** SOTTO_MAX_GROUP_MEMBERS, or the default; a value that is not a whole number from 2 up is refused. */
export function maxGroupMembers(env: NodeJS.ProcessEnv = process.env): number {
  const value = env['SOTTO_MAX_GROUP_MEMBERS'];
  if (value === undefined || value === '') return DEFAULT_MAX_GROUP_MEMBERS;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 2) {
    throw new SottoError(
      `SOTTO_MAX_GROUP_MEMBERS: expected a whole number of members, 2 or more (was ${value})`,
    );
  }
  return Number(value);
}

/** Where a profile keeps its groups (the client's Groups, and backups, read it). */
export const GROUPS_FILE = 'groups.json';

/** A group's id: 16 random bytes, written as 32 lowercase hex digits. */
export const GROUP_ID = /^[0-9a-f]{32}$/;

export function newGroupId(): string {
  return randomBytes(16).toString('hex');
}

/** A group id as typed by a person; a SottoError naming the problem otherwise. */
export function parseGroupId(text: string): string {
  const id = text.trim().toLowerCase();
  if (!GROUP_ID.test(id)) throw new SottoError(`not a group id: ${text} (expected 32 hex digits)`);
  return id;
}

/**
 * A group as its admins signed it. Members and admins are account ids, each
 * once, in ascending order (so that one state has one encoding); admins are
 * members. Version 1 is the group as created; each change is the next.
 */
export interface GroupState {
  readonly id: string;
  readonly title: string;
  readonly members: readonly string[];
  readonly admins: readonly string[];
  readonly version: number;
}

/** A state with the admin's signature over groupStateSigningInput: what travels in a group update. */
export interface SignedGroupState {
  readonly state: GroupState;
  /** The admin's account id. */
  readonly signer: string;
  /** Base64 of the signature by the signer's account identity key. */
  readonly signature: string;
}

export const MAX_GROUP_TITLE = 128;

const accountId = z.guid();
export const groupStateSchema = z.object({
  id: z.string().regex(GROUP_ID),
  title: z.string().min(1).max(MAX_GROUP_TITLE),
  members: z.array(accountId).min(1),
  admins: z.array(accountId).min(1),
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
});

export const signedGroupStateSchema = z.object({
  state: groupStateSchema,
  signer: accountId,
  signature: z.base64().min(1),
});

const sortedUnique = (ids: readonly string[]): string[] => [...new Set(ids)].sort();

/** A state in its one canonical form: members and admins sorted, each once. */
export function canonicalState(state: GroupState): GroupState {
  return {
    id: state.id,
    title: state.title,
    members: sortedUnique(state.members),
    admins: sortedUnique(state.admins),
    version: state.version,
  };
}

/**
 * What an admin signs: a context string no other signature in Sotto uses
 * (so a signed group state can pass for nothing else, nor anything else for
 * it), then the group id, the version and the whole state, canonical.
 */
export function groupStateSigningInput(state: GroupState): Uint8Array<ArrayBuffer> {
  const { id, version, title, members, admins } = canonicalState(state);
  return bytes(
    Buffer.concat([
      Buffer.from('Sotto group state v1\0', 'utf8'),
      Buffer.from(JSON.stringify([id, version, title, members, admins]), 'utf8'),
    ]),
  );
}

export function signGroupState(state: GroupState, signer: string, key: PrivateKey): SignedGroupState {
  const canonical = canonicalState(state);
  return {
    state: canonical,
    signer,
    signature: Buffer.from(key.sign(groupStateSigningInput(canonical))).toString('base64'),
  };
}

/** Why a state is not well formed, or undefined when it is; `max` bounds the members. */
export function groupStateProblem(state: GroupState, max: number): string | undefined {
  const canonical = canonicalState(state);
  if (canonical.members.length !== state.members.length || canonical.admins.length !== state.admins.length)
    return 'a member or admin is listed twice';
  if (state.members.length > max) return `${state.members.length} members, more than the ${max} allowed`;
  if (state.admins.some((admin) => !canonical.members.includes(admin))) return 'an admin is not a member';
  return undefined;
}

/** What an accepted update changed, for history: who was added and removed, and whether the title changed. */
export interface GroupChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  readonly title?: string;
}

export function groupChange(before: GroupState | undefined, after: GroupState): GroupChange {
  const was = new Set(before?.members ?? []);
  const is = new Set(after.members);
  return {
    added: after.members.filter((id) => !was.has(id)),
    removed: [...was].filter((id) => !is.has(id)),
    ...(before !== undefined && before.title !== after.title && { title: after.title }),
  };
}

/**
 * Whether this device takes a signed update, given the group as it holds it
 * (undefined: a group it does not know, or no longer belongs to). Taken only
 * when well formed, signed by an admin's identity key (`keyOf`: the key this
 * device trusts for an account), and:
 * - for a known group this device is in: signed by a current admin, at the
 *   current version + 1;
 * - otherwise (a group it joins): naming this device's account as a member,
 *   signed by one of the admins it names; for a group this device was in
 *   before, also by one of the admins it knew then, above that version.
 * Anything else is refused with the reason, and the group stays as it was.
 */
export function checkGroupUpdate(
  current: GroupState | undefined,
  update: SignedGroupState,
  context: {
    readonly ownAccountId: string;
    readonly keyOf: (accountId: string) => PublicKey | null;
    readonly max: number;
  },
): { accepted: GroupState } | { refused: string } {
  const state = update.state;
  const problem = groupStateProblem(state, context.max);
  if (problem !== undefined) return { refused: `malformed state: ${problem}` };
  const joined = current !== undefined && current.members.includes(context.ownAccountId);
  if (current !== undefined && current.id !== state.id) return { refused: 'for another group' };
  if (joined) {
    if (!current.admins.includes(update.signer)) return { refused: 'signed by someone who is not an admin' };
    if (state.version !== current.version + 1)
      return { refused: `version ${state.version}, where ${current.version + 1} comes next` };
  } else {
    if (!state.members.includes(context.ownAccountId)) return { refused: 'does not name this account' };
    // A group this device was in: only an admin it knew may bring it back, not whoever names himself one.
    const admins = current?.admins ?? state.admins;
    if (!admins.includes(update.signer) || !state.admins.includes(update.signer))
      return { refused: 'signed by someone who is not an admin' };
    if (current !== undefined && state.version <= current.version)
      return { refused: `version ${state.version}, not above ${current.version}` };
  }
  const key = context.keyOf(update.signer);
  if (!key) return { refused: "the signer's identity key is not known here" };
  let valid = false;
  try {
    valid = key.verify(groupStateSigningInput(state), bytes(Buffer.from(update.signature, 'base64')));
  } catch {
    valid = false;
  }
  if (!valid) return { refused: "the signature does not verify under the signer's identity key" };
  return { accepted: canonicalState(state) };
}
