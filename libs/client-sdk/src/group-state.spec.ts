import { IdentityKeyPair } from '@signalapp/libsignal-client';
import { deviceListSigningInput } from '@sotto/contracts';
import {
  checkGroupUpdate,
  groupChange,
  groupStateSigningInput,
  maxGroupMembers,
  newGroupId,
  parseGroupId,
  signGroupState,
  type GroupState,
} from './group-state';

const ALICE = '0190f1d2-7a3b-7c4d-8e5f-a1b2c3d4e5f6';
const BOB = '0190f1d2-7a3b-7c4d-8e5f-b1b2c3d4e5f6';
const CAROL = '0190f1d2-7a3b-7c4d-8e5f-c1b2c3d4e5f6';
const DAVE = '0190f1d2-7a3b-7c4d-8e5f-d1b2c3d4e5f6';

describe('group state', () => {
  const keys = { [ALICE]: IdentityKeyPair.generate(), [BOB]: IdentityKeyPair.generate() };
  const keyOf = (id: string) => (id === ALICE || id === BOB ? keys[id].publicKey : null);
  const id = newGroupId();
  const created: GroupState = {
    id,
    title: 'climbing',
    members: [CAROL, ALICE, BOB],
    admins: [ALICE],
    version: 1,
  };
  const asBob = { ownAccountId: BOB, keyOf, max: 1000 };
  const asCarol = { ownAccountId: CAROL, keyOf, max: 1000 };

  it('makes 16-byte hex ids and reads them back, refusing anything else', () => {
    expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(newGroupId()).not.toBe(id);
    expect(parseGroupId(id.toUpperCase())).toBe(id);
    expect(() => parseGroupId('abc')).toThrow('not a group id: abc (expected 32 hex digits)');
  });

  it('takes a new group signed by its admin, in canonical form', () => {
    const signed = signGroupState(created, ALICE, keys[ALICE].privateKey);
    expect(signed.state.members).toEqual([ALICE, BOB, CAROL]);
    expect(checkGroupUpdate(undefined, signed, asBob)).toEqual({ accepted: signed.state });
  });

  it('takes the next version from a current admin, and says who came and went', () => {
    const current = signGroupState(created, ALICE, keys[ALICE].privateKey).state;
    const next = { ...current, members: [ALICE, BOB, DAVE], version: 2 };
    const result = checkGroupUpdate(current, signGroupState(next, ALICE, keys[ALICE].privateKey), asBob);
    expect(result).toEqual({ accepted: next });
    expect(groupChange(current, next)).toEqual({ added: [DAVE], removed: [CAROL] });
  });

  it('refuses a change by a member who is not an admin, a wrong version, a bad signature, and a replay', () => {
    const current = signGroupState(created, ALICE, keys[ALICE].privateKey).state;
    const next = { ...current, members: [ALICE, BOB], version: 2 };
    expect(checkGroupUpdate(current, signGroupState(next, BOB, keys[BOB].privateKey), asCarol)).toEqual({
      refused: 'signed by someone who is not an admin',
    });
    // Bob names himself admin in the state he signs: the current admins decide, not the new ones.
    const coup = { ...next, admins: [ALICE, BOB] };
    expect(checkGroupUpdate(current, signGroupState(coup, BOB, keys[BOB].privateKey), asCarol)).toEqual({
      refused: 'signed by someone who is not an admin',
    });
    expect(
      checkGroupUpdate(
        current,
        signGroupState({ ...next, version: 3 }, ALICE, keys[ALICE].privateKey),
        asCarol,
      ),
    ).toEqual({ refused: 'version 3, where 2 comes next' });
    expect(
      checkGroupUpdate(current, signGroupState(current, ALICE, keys[ALICE].privateKey), asCarol),
    ).toEqual({
      refused: 'version 1, where 2 comes next',
    });
    // Alice's name, Bob's key; a signature over another state; no signature worth the name.
    const forged = { ...signGroupState(next, ALICE, keys[BOB].privateKey) };
    const swapped = {
      ...signGroupState(next, ALICE, keys[ALICE].privateKey),
      state: { ...next, title: 'x' },
    };
    const garbage = { state: next, signer: ALICE, signature: Buffer.alloc(64).toString('base64') };
    for (const update of [forged, swapped, garbage]) {
      expect(checkGroupUpdate(current, update, asCarol)).toEqual({
        refused: "the signature does not verify under the signer's identity key",
      });
    }
  });

  it('takes a member back only from an admin it knew, at a higher version', () => {
    const sign = (state: GroupState, by = ALICE) =>
      signGroupState(state, by, by === ALICE ? keys[ALICE].privateKey : keys[BOB].privateKey);
    const removed = { ...created, members: [ALICE, BOB], version: 2 };
    const back = { ...created, version: 3 };
    expect(checkGroupUpdate(removed, sign(back), asCarol)).toEqual({ accepted: sign(back).state });
    // Bob names himself admin of the group Carol was in: she does not take it from him.
    const bobs = { ...back, admins: [ALICE, BOB] };
    expect(checkGroupUpdate(removed, sign(bobs, BOB), asCarol)).toEqual({
      refused: 'signed by someone who is not an admin',
    });
    expect(checkGroupUpdate(removed, sign({ ...back, version: 2 }), asCarol)).toEqual({
      refused: 'version 2, not above 2',
    });
  });

  it('refuses malformed states and groups that do not name this account or exceed the limit', () => {
    const sign = (state: GroupState) => signGroupState(state, ALICE, keys[ALICE].privateKey);
    expect(checkGroupUpdate(undefined, sign({ ...created, admins: [DAVE] }), asBob)).toEqual({
      refused: 'malformed state: an admin is not a member',
    });
    expect(checkGroupUpdate(undefined, sign({ ...created, members: [ALICE, CAROL] }), asBob)).toEqual({
      refused: 'does not name this account',
    });
    expect(checkGroupUpdate(undefined, sign(created), { ...asBob, max: 2 })).toEqual({
      refused: 'malformed state: 3 members, more than the 2 allowed',
    });
    const twice = { state: { ...created, members: [ALICE, ALICE, BOB] }, signer: ALICE, signature: 'AA==' };
    expect(checkGroupUpdate(undefined, twice, asBob)).toEqual({
      refused: 'malformed state: a member or admin is listed twice',
    });
  });

  it('signs over a context of its own, unlike device lists', () => {
    const input = Buffer.from(groupStateSigningInput(created));
    expect(input.subarray(0, 21).toString()).toBe('Sotto group state v1\0');
    expect(Buffer.from(deviceListSigningInput(input)).equals(input)).toBe(false);
  });

  it('reads the member limit from SOTTO_MAX_GROUP_MEMBERS', () => {
    expect(maxGroupMembers({})).toBe(1000);
    expect(maxGroupMembers({ SOTTO_MAX_GROUP_MEMBERS: '5' })).toBe(5);
    expect(() => maxGroupMembers({ SOTTO_MAX_GROUP_MEMBERS: 'lots' })).toThrow('SOTTO_MAX_GROUP_MEMBERS');
  });
});
