import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  IdentityKeyPair,
  ProtocolAddress,
  SenderKeyDistributionMessage,
  groupEncrypt,
} from '@signalapp/libsignal-client';
import { newGroupId, signGroupState, type GroupState } from '../group-state';
import { Profile, type Notice } from '../profile';
import { ProfileSenderKeyStore, profileSignalStores } from '../signal-stores';
import { ContactBook } from './contacts';
import { encodeContent } from './content';
import { Groups } from './groups';
import { Notices } from './notices';

const ALICE = '0190f1d2-7a3b-7c4d-8e5f-a1b2c3d4e5f6';
const BOB = '0190f1d2-7a3b-7c4d-8e5f-b1b2c3d4e5f6';
const CAROL = '0190f1d2-7a3b-7c4d-8e5f-c1b2c3d4e5f6';

/*
 * Bob's device receiving a group: the updates, sender keys and messages as
 * its inbox hands them over once decrypted, with real libsignal sender keys
 * and a real profile. Receiving needs no server: the members' names are in
 * the contact book already, and the parts that send are never reached.
 */
describe('a group as a member device receives it', () => {
  const work = mkdtempSync(join(tmpdir(), 'sotto-groups-'));
  const alice = IdentityKeyPair.generate();
  const carol = IdentityKeyPair.generate();
  const id = newGroupId();
  const created: GroupState = {
    id,
    title: 'climbing',
    members: [ALICE, BOB, CAROL],
    admins: [ALICE],
    version: 1,
  };
  let profile: Profile;
  let groups: Groups;
  const notices: Notice[] = [];
  const fromAlice = { accountId: ALICE, deviceId: 1, sealed: true };
  const fromCarol = { accountId: CAROL, deviceId: 1, sealed: true };

  /** A member's device: its sender key for the group, handed out and used as Groups.send does. */
  function senderKeys(accountId: string) {
    const store = new ProfileSenderKeyStore(Profile.create(join(work, `${accountId}-device`)));
    const address = ProtocolAddress.new(accountId, 1);
    const distributionId = randomUUID();
    return {
      distribution: async () =>
        Buffer.from(
          (await SenderKeyDistributionMessage.create(address, distributionId, store)).serialize(),
        ).toString('base64'),
      encrypt: async (text: string) =>
        (
          await groupEncrypt(
            address,
            distributionId,
            store,
            encodeContent({ v: 1, kind: 'group-message', group: id, text, sentAt: new Date().toISOString() }),
          )
        ).serialize(),
    };
  }

  beforeAll(() => {
    profile = Profile.create(join(work, 'bob'));
    profile.writeJson('contacts.json', { byName: { alice: ALICE, carol: CAROL }, devices: {} });
    profile.write(`identities/${ALICE}`, alice.publicKey.serialize());
    profile.write(`identities/${CAROL}`, carol.publicKey.serialize());
    const identity = IdentityKeyPair.generate();
    const stores = profileSignalStores({
      profile,
      identity,
      registrationId: 7,
      lastResortKyberId: 1,
      onIdentityChange: () => undefined,
    });
    const recorded = new Notices(profile);
    recorded.listen((notice) => notices.push(notice));
    const unused = undefined as never;
    const account = { username: 'bob', accountId: BOB, deviceId: 1 };
    const contacts = new ContactBook(profile, unused, account, recorded);
    groups = new Groups(
      profile,
      unused,
      account,
      identity,
      stores,
      contacts,
      unused,
      unused,
      unused,
      recorded,
    );
  });

  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('takes the admin-signed group, and says so in history', async () => {
    const update = signGroupState(created, ALICE, alice.privateKey);
    expect(await groups.receive({ v: 1, kind: 'group-update', update }, fromAlice, 'update-1')).toEqual([]);
    expect((await groups.members(id)).map((member) => [member.username, member.admin])).toEqual([
      ['alice', true],
      ['bob', false],
      ['carol', false],
    ]);
    expect(groups.history(id).map((entry) => ('change' in entry ? entry.change : entry.kind))).toEqual([
      'alice created the group “climbing”',
      'alice added bob',
      'alice added carol',
    ]);
  });

  it('keeps a message that comes before its sender key, and reads it when the key comes', async () => {
    const alices = senderKeys(ALICE);
    const distribution = await alices.distribution();
    const early = await alices.encrypt('before the key');
    expect(await groups.open(early, fromAlice, 'early')).toBeUndefined();
    const read = await groups.receive(
      { v: 1, kind: 'sender-key', group: id, distribution },
      fromAlice,
      'sender-key-1',
    );
    expect(read).toEqual([
      expect.objectContaining({ from: 'alice', text: 'before the key', group: id, guid: 'early' }),
    ]);
    // Kept once: a later key does not read it again.
    expect(
      await groups.receive({ v: 1, kind: 'sender-key', group: id, distribution }, fromAlice, 'sender-key-2'),
    ).toEqual([]);
    expect(await groups.open(await alices.encrypt('after'), fromAlice, 'after')).toEqual(
      expect.objectContaining({ from: 'alice', text: 'after', group: id }),
    );
  });

  it('refuses a change signed by a member who is not an admin, leaving the group as it was', async () => {
    const coup = signGroupState(
      { ...created, admins: [ALICE, CAROL], members: [ALICE, CAROL], version: 2 },
      CAROL,
      carol.privateKey,
    );
    expect(await groups.receive({ v: 1, kind: 'group-update', update: coup }, fromCarol, 'coup')).toEqual([]);
    expect(notices.at(-1)).toMatchObject({
      kind: 'group-update-refused',
      contact: 'carol',
      group: id,
      reason: 'signed by someone who is not an admin',
    });
    expect((await groups.members(id)).map((member) => member.username)).toEqual(['alice', 'bob', 'carol']);
  });

  it('reads nothing from a member once an admin removed them', async () => {
    const carols = senderKeys(CAROL);
    await groups.receive(
      { v: 1, kind: 'sender-key', group: id, distribution: await carols.distribution() },
      fromCarol,
      'carol-key',
    );
    expect(await groups.open(await carols.encrypt('still in'), fromCarol, 'carol-1')).toMatchObject({
      text: 'still in',
    });
    const removal = signGroupState(
      { ...created, members: [ALICE, BOB], version: 2 },
      ALICE,
      alice.privateKey,
    );
    await groups.receive({ v: 1, kind: 'group-update', update: removal }, fromAlice, 'update-2');
    expect(notices.at(-1)).toMatchObject({ kind: 'group-changed', change: 'alice removed carol' });
    await expect(groups.open(await carols.encrypt('am I still in?'), fromCarol, 'carol-2')).rejects.toThrow(
      `envelope carol-2: from someone who is not in group ${id}`,
    );
    // A message sent pairwise in her name is dropped too.
    expect(
      await groups.receive(
        { v: 1, kind: 'group-text', group: id, text: 'pairwise', sentAt: new Date().toISOString() },
        fromCarol,
        'carol-3',
      ),
    ).toEqual([]);
    expect(
      groups
        .history(id)
        .some((entry) => 'text' in entry && entry.text !== 'still in' && entry.guid?.startsWith('carol')),
    ).toBe(false);
  });
});
