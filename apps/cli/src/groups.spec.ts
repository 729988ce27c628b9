import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { multiRecipientTopic } from '@sotto/contracts';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import {
  accountIdForms,
  everythingStored,
  redisStored,
  startTestPlatform,
  topicRecords,
  type Platform,
} from '@sotto/testing';
import { Attacker, sottoPlaintext } from './testing/attacker';
import { sottoLinking, sottoWith, succeeded } from './testing/sotto';

const lines = (stdout: string): string[] => (stdout.trim() === '' ? [] : stdout.trimEnd().split('\n'));
const json = (stdout: string): Record<string, unknown>[] =>
  lines(stdout).map((line) => JSON.parse(line) as Record<string, unknown>);

describe('group conversations with the sotto command', () => {
  let platform: Platform & { databaseUrl: string };
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-groups-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const name = (who: string) => `${who}_${tag}`;
  const people = ['alice', 'bob', 'carol', 'dave'];
  // The sealed-sender trust root pinned, as a deployment's clients have it: group messages go sealed.
  const trusting = (
    { env = {}, input = '' }: { env?: Record<string, string>; input?: string },
    who: string,
    ...args: string[]
  ) =>
    sottoWith(
      { SOTTO_SENDER_CERTIFICATE_TRUST_ROOT: platform.senderCertificateTrustRoot, ...env },
      input,
      '--server',
      platform.gateway,
      '--profile',
      join(profiles, who),
      ...args,
    );
  const as = (who: string, ...args: string[]) => trusting({}, who, ...args);
  const accountOf = (who: string) =>
    (JSON.parse(readFileSync(join(profiles, who, 'account.json'), 'utf8')) as { accountId: string })
      .accountId;
  /** What `who` receives now, as `receive --json` prints it. */
  const receive = async (who: string) => json(await succeeded(as(who, 'receive', '--json')));
  const texts = (received: Record<string, unknown>[]) =>
    received
      .filter((line) => 'text' in line)
      .map((line) => `${String(line['from'])}: ${String(line['text'])}`);
  const changes = (received: Record<string, unknown>[]) =>
    received.filter((line) => line['kind'] === 'group-changed').map((line) => line['change']);
  const members = async (who: string, id: string) =>
    json(await succeeded(as(who, 'group', 'members', id, '--json'))).map((member) => member['username']);
  let group = '';

  beforeAll(async () => {
    platform = await startTestPlatform();
    for (const who of people) await succeeded(as(who, 'register', name(who)));
    // Everyone has had a message from everyone: each holds the others' profile keys, so group messages go sealed.
    for (const from of people)
      for (const to of people) if (from !== to) await succeeded(as(from, 'send', name(to), `hi ${to}`));
    for (const who of people) await succeeded(as(who, 'receive'));
  });

  afterAll(async () => {
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it('three people make a group, and each reads what the others send', async () => {
    const created = await as('alice', 'group', 'create', 'climbing', name('bob'), name('carol'));
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(/^group [0-9a-f]{32}\n$/);
    group = created.stdout.trim().slice('group '.length);

    for (const who of ['bob', 'carol']) {
      expect(changes(await receive(who)).sort()).toEqual(
        [
          `${name('alice')} created the group “climbing”`,
          `${name('alice')} added ${name('bob')}`,
          `${name('alice')} added ${name('carol')}`,
        ].sort(),
      );
    }
    // One upload each: no member is sent to one by one.
    for (const who of ['alice', 'bob', 'carol'])
      expect(await as(who, 'group', 'send', group, `${who} says hi`)).toEqual({
        code: 0,
        stdout: `sent to group ${group}\n`,
        stderr: '',
      });
    for (const who of ['alice', 'bob', 'carol']) {
      const received = await receive(who);
      const others = ['alice', 'bob', 'carol'].filter((other) => other !== who);
      expect(texts(received).sort()).toEqual(others.map((other) => `${name(other)}: ${other} says hi`));
      for (const line of received.filter((entry) => 'text' in entry))
        expect(line).toMatchObject({ group, sealed: true });
    }
    expect(await members('carol', group)).toEqual(
      expect.arrayContaining([name('alice'), name('bob'), name('carol')]),
    );
    const listed = json(await succeeded(as('bob', 'group', 'list', '--json')));
    expect(listed).toEqual([
      { id: group, title: 'climbing', version: 1, member: true, members: expect.any(Array) },
    ]);
    const history = await succeeded(as('bob', 'history', '--group', group));
    expect(history).toContain(`*** group ${group}: ${name('alice')} created the group “climbing”`);
    expect(history).toContain(`${name('carol')} → group ${group}: carol says hi`);
  });

  it('a removed member gets nothing readable afterwards, and the others keep talking', async () => {
    expect(await as('alice', 'group', 'remove', group, name('carol'))).toEqual({
      code: 0,
      stdout: `removed ${name('carol')} from group ${group}\n`,
      stderr: '',
    });
    expect(changes(await receive('carol'))).toEqual([`${name('alice')} removed ${name('carol')}`]);
    expect(changes(await receive('bob'))).toEqual([`${name('alice')} removed ${name('carol')}`]);

    await succeeded(as('alice', 'group', 'send', group, 'carol is gone'));
    await succeeded(as('bob', 'group', 'send', group, 'bob still here'));
    expect(texts(await receive('bob'))).toEqual([`${name('alice')}: carol is gone`]);
    expect(texts(await receive('alice'))).toEqual([`${name('bob')}: bob still here`]);
    // Carol's devices were not encrypted to at all: nothing arrives, readable or not.
    expect(await receive('carol')).toEqual([]);
    expect(await succeeded(as('carol', 'history', '--group', group))).not.toContain('carol is gone');
    expect(await as('carol', 'group', 'send', group, 'let me back')).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: you are not a member of group ${group}\n`,
    });
  });

  it('a member added later reads from then on, not before', async () => {
    await succeeded(as('alice', 'group', 'add', group, name('dave')));
    expect(changes(await receive('dave'))).toEqual([`${name('alice')} added ${name('dave')}`]);
    expect(changes(await receive('bob'))).toEqual([`${name('alice')} added ${name('dave')}`]);
    await succeeded(as('bob', 'group', 'send', group, 'welcome dave'));
    await succeeded(as('dave', 'group', 'send', group, 'hello all'));
    expect(texts(await receive('dave'))).toEqual([`${name('bob')}: welcome dave`]);
    expect(texts(await receive('alice')).sort()).toEqual([
      `${name('bob')}: welcome dave`,
      `${name('dave')}: hello all`,
    ]);
    expect(texts(await receive('bob'))).toEqual([`${name('dave')}: hello all`]);
    const history = await succeeded(as('dave', 'history', '--group', group));
    for (const before of ['says hi', 'carol is gone', 'bob still here'])
      expect(history).not.toContain(before);
    expect(history).toContain('welcome dave');
  });

  it('refuses group changes by a non-admin and updates the server injects; the member list stays', async () => {
    const before = await members('dave', group);
    // Bob's client is modified to think him an admin: it signs with his key, and nobody takes it.
    expect(await as('bob', 'group', 'add', group, name('carol'))).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: you are not an admin of group ${group}\n`,
    });
    const bobsGroups = join(profiles, 'bob', 'groups.json');
    const file = JSON.parse(readFileSync(bobsGroups, 'utf8')) as {
      groups: Record<string, { state: { admins: string[] } }>;
    };
    file.groups[group]?.state.admins.push(accountOf('bob'));
    writeFileSync(bobsGroups, JSON.stringify(file));
    await succeeded(as('bob', 'group', 'add', group, name('carol')));
    for (const who of ['alice', 'dave']) {
      const refused = (await receive(who)).filter((line) => line['kind'] === 'group-update-refused');
      expect(refused).toEqual([
        expect.objectContaining({
          contact: name('bob'),
          group,
          reason: 'signed by someone who is not an admin',
        }),
      ]);
      expect(await members(who, group)).toEqual(before);
    }
    // Carol was told too (she is named in the state Bob signed), and she does not take it either.
    expect((await receive('carol')).map((line) => line['kind'])).toEqual(['group-update-refused']);

    // Updates injected as if by the server: envelopes the platform could deliver (here from a registered
    // account, through the public API), claiming Alice signed a new state that adds Mallory: a signature of
    // zeros, and one by Mallory's key.
    const mallory = await Attacker.register(platform.gateway, name('mallory'));
    try {
      const dave = await mallory.sessionWith(name('dave'));
      const state = {
        id: group,
        title: 'climbing',
        members: [accountOf('alice'), accountOf('bob'), accountOf('dave'), mallory.accountId].sort(),
        admins: [accountOf('alice')],
        version: 4,
      };
      const updates = [
        { state, signer: accountOf('alice'), signature: Buffer.alloc(64).toString('base64') },
        {
          state,
          signer: accountOf('alice'),
          signature: Buffer.from(mallory.keys.identity.privateKey.sign(Buffer.from('x'))).toString('base64'),
        },
      ];
      for (const update of updates) {
        const content = sottoPlaintext(JSON.stringify({ v: 1, kind: 'group-update', update }));
        const { type, content: sealed } = await mallory.encrypt(dave, content);
        expect(
          type === EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE ||
            type === EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
        ).toBe(true);
        await mallory.send(dave, type, sealed);
      }
    } finally {
      mallory.close();
    }
    const refused = (await receive('dave')).filter((line) => line['kind'] === 'group-update-refused');
    expect(refused.map((line) => line['reason'])).toEqual([
      "the signature does not verify under the signer's identity key",
      "the signature does not verify under the signer's identity key",
    ]);
    expect(await members('dave', group)).toEqual(before);
    await succeeded(as('alice', 'group', 'send', group, 'still just us'));
    expect(texts(await receive('dave'))).toEqual([`${name('alice')}: still just us`]);
  });

  it('keeps group messages sealed: the envelopes name no sender, and no text is stored anywhere', async () => {
    const probe = `group leak probe ${randomUUID()}`;
    await succeeded(as('alice', 'group', 'send', group, probe));
    const alice = accountOf('alice');
    // Before anyone receives: the copies sit in Bob's and Dave's mailboxes, naming no sender.
    for (const who of ['bob', 'dave']) {
      const pieces = await redisStored(`sotto:mailbox:{${accountOf(who)}:1}*`);
      expect(pieces.length).toBeGreaterThan(0);
      for (const piece of pieces)
        for (const form of accountIdForms(alice)) expect(piece.includes(form)).toBe(false);
    }
    // Kafka: Alice's messages to the group are records keyed by the recipients, naming no sender.
    const recipients = [accountOf('bob'), accountOf('dave')];
    const hers = (await topicRecords(multiRecipientTopic.TOPIC)).filter((record) =>
      record.key.equals(multiRecipientTopic.encodeKey(recipients)),
    );
    expect(hers.length).toBeGreaterThan(0);
    for (const record of hers)
      for (const form of accountIdForms(alice))
        expect(record.key.includes(form) || record.value.includes(form)).toBe(false);

    const stored = await everythingStored({ databaseUrl: platform.databaseUrl });
    for (const text of [probe, 'says hi', 'carol is gone', 'welcome dave', 'climbing'])
      expect(stored.includes(Buffer.from(text))).toBe(false);
    for (const who of ['bob', 'dave'])
      expect(texts(await receive(who))).toContain(`${name('alice')}: ${probe}`);
  });

  it('answers unknown groups, bad ids, strangers and oversized groups in one line', async () => {
    const unknown = 'ab'.repeat(16);
    expect(await as('alice', 'group', 'send', unknown, 'hello?')).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: unknown group ${unknown}\n`,
    });
    expect(await as('alice', 'group', 'members', 'not-a-group')).toEqual({
      code: 1,
      stdout: '',
      stderr: 'sotto: not a group id: not-a-group (expected 32 hex digits)\n',
    });
    expect(await as('alice', 'group', 'add', group, name('dave'))).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: ${name('dave')} is already a member of group ${group}\n`,
    });
    expect(await as('alice', 'group', 'create', 'x', `nobody_${tag}`)).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: unknown user nobody_${tag}\n`,
    });
    // A smaller limit, as SOTTO_MAX_GROUP_MEMBERS sets it.
    const limited = (...args: string[]) =>
      trusting({ env: { SOTTO_MAX_GROUP_MEMBERS: '3' } }, 'alice', ...args);
    const refused = {
      code: 1,
      stdout: '',
      stderr: 'sotto: a group holds at most 3 members; this would make 4\n',
    };
    expect(await limited('group', 'create', 'big', name('bob'), name('carol'), name('dave'))).toEqual(
      refused,
    );
    expect(await limited('group', 'add', group, name('carol'))).toEqual(refused);
    expect(await members('alice', group)).not.toContain(name('carol'));
  });

  it('a group survives backup and restore: still listed, and messages flow both ways', async () => {
    const made = await succeeded(as('alice', 'backup', 'create'));
    const recoveryKey = lines(made).at(-1) ?? '';
    expect(recoveryKey).toMatch(/^[0-9a-z]{64}$/);
    const restored = await trusting(
      { input: `${recoveryKey}\n` },
      'alice-phone',
      'backup',
      'restore',
      name('alice'),
      '--recovery-key-stdin',
    );
    expect(restored).toMatchObject({ code: 0, stderr: '' });
    expect(json(await succeeded(as('alice-phone', 'group', 'list', '--json')))).toEqual([
      expect.objectContaining({ id: group, title: 'climbing', member: true }),
    ]);
    expect(await succeeded(as('alice-phone', 'history', '--group', group))).toContain('welcome dave');
    // The restored device has a new identity key: nothing goes to the group until a member accepts it; then
    // their sessions start afresh, and their sender keys go to the new device.
    expect(await as('dave', 'group', 'send', group, 'welcome back alice')).toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        `the safety number with ${name('alice')} changed, so nothing was sent`,
      ) as string,
    });
    await succeeded(as('dave', 'trust', name('alice')));
    await succeeded(as('dave', 'group', 'send', group, 'welcome back alice'));
    expect(texts(await receive('alice-phone'))).toEqual([`${name('dave')}: welcome back alice`]);
    await succeeded(as('alice-phone', 'group', 'send', group, 'restored and here'));
    expect(texts(await receive('dave'))).toEqual([`${name('alice')}: restored and here`]);
  });

  it('a member who leaves is told to everyone and gets nothing afterwards', async () => {
    expect(await as('dave', 'group', 'leave', group)).toEqual({
      code: 0,
      stdout: `left group ${group}\n`,
      stderr: '',
    });
    expect(changes(await receive('alice-phone'))).toEqual([`${name('dave')} left`]);
    expect(await members('alice-phone', group)).not.toContain(name('dave'));
    await succeeded(as('alice-phone', 'group', 'send', group, 'dave is gone'));
    expect(await receive('dave')).toEqual([]);
    expect(await as('dave', 'group', 'send', group, 'still here?')).toMatchObject({
      code: 1,
      stderr: `sotto: you are not a member of group ${group}\n`,
    });
  });

  it('a device linked later gets the group and its messages, the sender mending its sessions on the mismatch', async () => {
    // Bob's client learns of Alice's new safety number on his first send and accepts it.
    expect(await as('bob', 'group', 'send', group, 'bob back')).toMatchObject({ code: 1 });
    await succeeded(as('bob', 'trust', name('alice')));
    await succeeded(as('bob', 'group', 'send', group, 'bob back'));
    // Sent one by one to Alice's new device (Bob has no access key of hers yet), with his profile key.
    expect(texts(await receive('alice-phone'))).toContain(`${name('bob')}: bob back`);

    const linking = await sottoLinking(
      { SOTTO_SENDER_CERTIFICATE_TRUST_ROOT: platform.senderCertificateTrustRoot },
      ...[
        '--server',
        platform.gateway,
        '--profile',
        join(profiles, 'bob2'),
        'link',
        name('bob'),
        '--wait',
        '60',
      ],
    );
    await succeeded(as('bob', 'devices', 'approve', linking.code));
    await succeeded(linking.done);
    expect(json(await succeeded(as('bob2', 'group', 'list', '--json')))).toEqual([
      expect.objectContaining({ id: group, member: true }),
    ]);

    // Alice's kept list of Bob's devices predates the link: the server answers the upload with the missing
    // device, and her client fetches Bob's signed list, starts a session, hands it her sender key, and sends again.
    expect(await as('alice-phone', 'group', 'send', group, 'to both of bob')).toEqual({
      code: 0,
      stdout: `sent to group ${group}\n`,
      stderr: '',
    });
    for (const device of ['bob', 'bob2'])
      expect(texts(await receive(device))).toContain(`${name('alice')}: to both of bob`);
  });

  it("a member's message reaches the member's other device, which reads it and keeps it as the member's", async () => {
    const entries = async (who: string, text: string) =>
      json(await succeeded(as(who, 'history', '--group', group, '--json'))).filter(
        (entry) => entry['text'] === text,
      );
    for (const [device, other] of [
      ['bob2', 'bob'],
      ['bob', 'bob2'],
    ] as const) {
      const text = `from ${device} ${tag}`;
      // One upload to the other members: nobody is sent to one by one.
      expect(await as(device, 'group', 'send', group, text)).toEqual({
        code: 0,
        stdout: `sent to group ${group}\n`,
        stderr: '',
      });
      expect(texts(await receive('alice-phone'))).toEqual([`${name('bob')}: ${text}`]);
      // The other device reads its copy: nothing to show as received (Bob sent it), nothing it could not read.
      expect(await receive(other)).toEqual([]);
      const [sent] = await entries(device, text);
      expect(sent).toMatchObject({ direction: 'out', from: name('bob'), group });
      expect(await entries(other, text)).toEqual([
        expect.objectContaining({
          kind: 'message',
          direction: 'out',
          from: name('bob'),
          group,
          sentAt: sent?.['sentAt'],
        }),
      ]);
      expect(await succeeded(as(other, 'history', '--group', group))).toContain(
        `${name('bob')} → group ${group}: ${text}`,
      );
    }
  });

  it("the last admin's leave hands the group to another member, who can change it", async () => {
    const created = await succeeded(as('bob', 'group', 'create', 'handover', name('alice')));
    const handover = /^group ([0-9a-f]{32})$/m.exec(created)?.[1] ?? '';
    expect(handover).not.toBe('');
    await receive('alice-phone');
    expect(await as('bob', 'group', 'leave', handover)).toEqual({
      code: 0,
      stdout: `left group ${handover}; ${name('alice')} is its admin now\n`,
      stderr: '',
    });
    expect(changes(await receive('alice-phone'))).toEqual([
      `${name('bob')} left`,
      `${name('alice')} is now an admin`,
    ]);
    expect(await members('alice-phone', handover)).toEqual([name('alice')]);
    // Bob's other device knows it left with him.
    await receive('bob2');
    expect(json(await succeeded(as('bob2', 'group', 'list', '--json')))).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: handover, member: false })]),
    );
    // The new admin's changes are taken by a member joining now.
    await succeeded(as('alice-phone', 'group', 'add', handover, name('dave')));
    expect(changes(await receive('dave'))).toEqual([`${name('alice')} added ${name('dave')}`]);
    expect(await members('dave', handover)).toEqual(expect.arrayContaining([name('alice'), name('dave')]));
    expect(await as('bob', 'group', 'send', handover, 'still here?')).toMatchObject({
      code: 1,
      stderr: `sotto: you are not a member of group ${handover}\n`,
    });
  });
});
