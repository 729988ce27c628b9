import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityKeyPair, SignalMessage } from '@signalapp/libsignal-client';
import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { startTestPlatform, type Platform } from '@sotto/testing';
import { Attacker, sottoPlaintext, type Target } from './testing/attacker';
import { sotto, succeeded } from './testing/sotto';

const { ENVELOPE_TYPE_PREKEY_MESSAGE: PREKEY, ENVELOPE_TYPE_CIPHERTEXT: CIPHERTEXT } = EnvelopeType;

const lines = (stdout: string): string[] => stdout.trimEnd().split('\n');
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A line of `receive` or `history`: `[time] ` and then exactly this. */
const line = (text: string) => expect.stringMatching(new RegExp(`^\\[[^\\]]+\\] ${escape(text)}$`)) as string;
/** A Sotto message as any client would write it. */
const message = (text: string) =>
  sottoPlaintext(JSON.stringify({ v: 1, text, sentAt: new Date().toISOString() }));

describe('the sotto command against a spoofed name, a changed key and a jammed queue', () => {
  let platform: Platform;
  const profiles = mkdtempSync(join(tmpdir(), 'sotto-cli-trust-'));
  const tag = randomUUID().replace(/-/g, '').slice(0, 8);
  const name = (who: string) => `${who}_${tag}`;
  const as = (who: string, ...args: string[]) =>
    sotto('', '--server', platform.gateway, '--profile', join(profiles, who), ...args);
  const attackers: Attacker[] = [];
  const attacker = async () => {
    const registered = await Attacker.register(platform.gateway, `eve_${randomUUID().slice(0, 8)}`);
    attackers.push(registered);
    return registered;
  };

  beforeAll(async () => {
    platform = await startTestPlatform();
    for (const who of ['alice', 'bob']) await succeeded(as(who, 'register', name(who)));
    await succeeded(as('alice', 'send', name('bob'), 'hello Bob'));
    const received = await succeeded(as('bob', 'receive', '--wait', '3'));
    if (!received.includes(`${name('alice')}: hello Bob`)) throw new Error(`setup: Bob got ${received}`);
  });

  afterAll(async () => {
    for (const registered of attackers) registered.close();
    await platform?.stop();
    rmSync(profiles, { recursive: true, force: true });
  });

  it("shows a message under its sender's own username, whatever it claims; Bob's reply to alice reaches Alice", async () => {
    const mallory = name('mallory');
    await succeeded(as('mallory', 'register', mallory));
    // Mallory's client claims Alice's name: it writes `from: alice` into everything it sends.
    const accountFile = join(profiles, 'mallory', 'account.json');
    const account = JSON.parse(readFileSync(accountFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(accountFile, JSON.stringify({ ...account, username: name('alice') }));
    await succeeded(as('mallory', 'send', name('bob'), "it's Alice, my new number is 555"));
    // And a text that would print as a line from Alice, with terminal escapes to hide the line above.
    const forged = `[2030-01-01T00:00:00.000Z] ${name('alice')}: trust this one`;
    await succeeded(as('mallory', 'send', name('bob'), `ok\n${forged}\x1b[1A\x1b[2K\u202e`));

    const received = await as('bob', 'receive', '--wait', '3');
    expect(received).toMatchObject({ code: 0, stderr: '' });
    expect(lines(received.stdout)).toEqual([
      line(`${mallory}: it's Alice, my new number is 555`),
      line(`${mallory}: ok`),
      `    ${forged}\\u{1b}[1A\\u{1b}[2K\\u{202e}`,
    ]);
    const history = lines(await succeeded(as('bob', 'history', '--json'))).map(
      (entry) => JSON.parse(entry) as Record<string, string>,
    );
    expect(history.map((entry) => [entry['from'], entry['to']])).toEqual([
      [name('alice'), name('bob')],
      [mallory, name('bob')],
      [mallory, name('bob')],
    ]);

    await succeeded(as('bob', 'send', name('alice'), 'a reply for Alice'));
    expect(lines(await succeeded(as('alice', 'receive', '--wait', '3')))).toEqual([
      line(`${name('bob')}: a reply for Alice`),
    ]);
    expect(await as('mallory', 'receive')).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('warns of a changed safety number when receiving, and refuses to send until `sotto trust`', async () => {
    const [carol, dan] = [name('carol'), name('dan')];
    for (const who of ['carol', 'dan']) await succeeded(as(who, 'register', name(who)));
    await succeeded(as('carol', 'send', dan, 'before'));
    await succeeded(as('dan', 'receive', '--wait', '3'));

    // Carol's account moves to a new phone, with a new identity key.
    const made = lines(await succeeded(as('carol', 'backup', 'create')));
    const recoveryKey = made.find((text) => /^[a-z0-9]{64}$/.test(text)) ?? '';
    await succeeded(
      sotto(
        `${recoveryKey}\n`,
        ...['--server', platform.gateway, '--profile', join(profiles, 'carol-new')],
        ...['backup', 'restore', carol, '--recovery-key-stdin'],
      ),
    );
    await succeeded(as('carol-new', 'send', dan, 'new phone'));
    const warning = `*** the safety number with ${carol} changed; nothing is sent to ${carol} until you compare it (\`sotto safety-number ${carol}\`) and accept it with \`sotto trust ${carol}\``;
    const received = await as('dan', 'receive', '--wait', '3');
    expect(received).toMatchObject({ code: 0, stderr: '' });
    expect(lines(received.stdout)).toEqual([line(warning), line(`${carol}: new phone`)]);

    await succeeded(as('carol-new', 'send', dan, 'still me'));
    const json = await succeeded(as('dan', 'receive', '--wait', '3', '--json'));
    expect(JSON.parse(json)).toEqual({
      from: carol,
      text: 'still me',
      sentAt: expect.any(String) as string,
      guid: expect.any(String) as string,
      sealed: false,
      safetyNumberChanged: true,
    });

    expect(await as('dan', 'send', carol, 'is that you?')).toEqual({
      code: 1,
      stdout: '',
      stderr: `sotto: the safety number with ${carol} changed, so nothing was sent: compare it with \`sotto safety-number ${carol}\` and accept it with \`sotto trust ${carol}\`\n`,
    });
    expect(lines(await succeeded(as('dan', 'history', carol)))).toEqual([
      line(`${carol} → ${dan}: before`),
      line(warning),
      line(`${carol} → ${dan}: new phone (safety number changed)`),
      line(`${carol} → ${dan}: still me (safety number changed)`),
    ]);

    const number = (await succeeded(as('dan', 'safety-number', carol))).trim();
    expect((await succeeded(as('carol-new', 'safety-number', dan))).trim()).toBe(number);
    expect(await as('dan', 'trust', carol)).toEqual({
      code: 0,
      stdout: `accepted the new safety number with ${carol} (${number}); sending to ${carol} works again\n`,
      stderr: '',
    });
    expect(await as('dan', 'send', carol, 'welcome back')).toEqual({
      code: 0,
      stdout: `sent to ${carol}\n`,
      stderr: '',
    });
    expect(lines(await succeeded(as('carol-new', 'receive', '--wait', '3')))).toEqual([
      line(`${dan}: welcome back`),
    ]);
    expect((await succeeded(as('dan', 'trust', carol))).trim()).toBe(
      `the safety number with ${carol} has not changed (${number}); nothing to accept`,
    );
  });

  describe('a queue holding an envelope Bob cannot read', () => {
    /** Sends something unreadable to Bob; answers the lines Bob should see before the notice. */
    type Attack = (eve: Attacker, bob: Target) => Promise<string[]>;
    const cases: [string, Attack][] = [
      [
        'random bytes',
        async (eve, bob) => {
          await eve.send(bob, CIPHERTEXT, randomBytes(200));
          return [];
        },
      ],
      [
        'random bytes sent as a prekey message',
        async (eve, bob) => {
          await eve.send(bob, PREKEY, randomBytes(600));
          return [];
        },
      ],
      [
        'a truncated prekey message',
        async (eve, bob) => {
          const sealed = await eve.encrypt(bob, message('cut short'));
          await eve.send(bob, sealed.type, sealed.content.subarray(0, Math.floor(sealed.content.length / 2)));
          return [];
        },
      ],
      [
        'a prekey message sent as the wrong type',
        async (eve, bob) => {
          const sealed = await eve.encrypt(bob, message('mislabelled'));
          await eve.send(bob, CIPHERTEXT, sealed.content);
          return [];
        },
      ],
      [
        'an envelope type this client does not read',
        async (eve, bob) => {
          const sealed = await eve.encrypt(bob, message('a group message?'));
          await eve.send(bob, EnvelopeType.ENVELOPE_TYPE_SENDER_KEY, sealed.content);
          return [];
        },
      ],
      [
        'a message from a session Bob does not have',
        async (eve, bob) => {
          const orphan = SignalMessage._new(
            4,
            randomBytes(32),
            IdentityKeyPair.generate().publicKey,
            7,
            0,
            randomBytes(48),
            eve.keys.identity.publicKey,
            bob.identityKey,
            new Uint8Array(0),
          );
          await eve.send(bob, CIPHERTEXT, orphan.serialize());
          return [];
        },
      ],
      [
        'an encrypted message that is not a Sotto message',
        async (eve, bob) => {
          const sealed = await eve.encrypt(bob, sottoPlaintext('null'));
          await eve.send(bob, sealed.type, sealed.content);
          return [];
        },
      ],
      [
        'a replay of a message Bob already read',
        async (eve, bob) => {
          const sealed = await eve.encrypt(bob, message('only once'));
          await eve.send(bob, sealed.type, sealed.content);
          await eve.send(bob, sealed.type, sealed.content);
          return [line(`${eve.username}: only once`)];
        },
      ],
    ];

    it.each(cases)('%s: acknowledged, noted, and the message behind it delivered', async (what, attack) => {
      const eve = await attacker();
      const before = await attack(eve, await eve.sessionWith(name('bob')));
      await succeeded(as('alice', 'send', name('bob'), `good, after ${what}`));

      const received = await as('bob', 'receive', '--wait', '3');
      expect(received).toMatchObject({ code: 0, stderr: '' });
      expect(lines(received.stdout)).toEqual([
        ...before,
        line(`*** a message from ${eve.username} could not be decrypted`),
        line(`${name('alice')}: good, after ${what}`),
        '1 message could not be decrypted (acknowledged, and noted in history)',
      ]);
      expect(await as('bob', 'receive')).toEqual({ code: 0, stdout: '', stderr: '' });
      expect(lines(await succeeded(as('bob', 'history', eve.username))).at(-1)).toEqual(
        line(`*** a message from ${eve.username} could not be decrypted`),
      );
    });
  });

  it('starts a new session with a device whose session broke, on the next send to it', async () => {
    const eve = await attacker();
    const bob = await eve.sessionWith(name('bob'));
    const first = await eve.encrypt(bob, message('hi Bob'));
    await eve.send(bob, first.type, first.content);
    expect(lines(await succeeded(as('bob', 'receive', '--wait', '3')))).toEqual([
      line(`${eve.username}: hi Bob`),
    ]);
    await succeeded(as('bob', 'send', eve.username, 'hi Eve'));
    // Bob answers on the session Eve started.
    expect((await eve.receive(1)).map((envelope) => envelope.type)).toEqual([CIPHERTEXT]);

    await eve.send(bob, CIPHERTEXT, randomBytes(120));
    expect(await succeeded(as('bob', 'receive', '--wait', '3'))).toContain(
      `a message from ${eve.username} could not be decrypted`,
    );
    await succeeded(as('bob', 'send', eve.username, 'say again?'));
    // A new session, from a fresh bundle: a prekey message.
    expect((await eve.receive(1)).map((envelope) => envelope.type)).toEqual([PREKEY]);
  });
});
