import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  DEFAULT_SERVER,
  SottoClient,
  parseServerAddress,
  serverStatus,
  type HistoryEntry,
  type Notice,
  type ReceivedMessage,
  type VaultAttemptReport,
} from '@sotto/client-sdk';

interface GlobalOptions {
  server: string;
  profile: string;
  ca?: string;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

function deviceId(value: string): number {
  if (!/^\d{1,9}$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('expected a device id, 1 or more');
  return Number(value);
}

/** A day as `YYYY-MM-DD`, or "never" for 0. */
function day(ms: string): string {
  return Number(ms) === 0 ? 'never' : new Date(Number(ms)).toISOString().slice(0, 10);
}

function sealedSenders(value: string): 'contacts' | 'anyone' {
  if (value !== 'contacts' && value !== 'anyone')
    throw new InvalidArgumentError('expected contacts or anyone');
  return value;
}

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('expected a number of seconds, 0 or more');
  return parsed;
}

/** Everything on standard input, without the line ending a terminal or `echo` adds. */
async function readStdin(what: string): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (text.length === 0) throw new Error(`no ${what} on standard input`);
  return text;
}

/** Transfers this large get a progress bar on stderr. */
const PROGRESS_FROM_BYTES = 4 * 1024 * 1024;

function progressBar(label: string): (progress: { done: number; total: number }) => void {
  let shown = -1;
  return ({ done, total }) => {
    if (total < PROGRESS_FROM_BYTES) return;
    const percent = Math.floor((done / total) * 100);
    // On a terminal the bar redraws in place; in a log, a line every 10%.
    const step = process.stderr.isTTY ? percent : percent - (percent % 10);
    if (step === shown) return;
    shown = step;
    const filled = Math.round(step / 5);
    const bar = `${label} [${'#'.repeat(filled)}${'.'.repeat(20 - filled)}] ${step}% of ${(total / 1048576).toFixed(1)} MiB`;
    process.stderr.write(process.stderr.isTTY ? `\r${bar}${step === 100 ? '\n' : ''}` : `${bar}\n`);
  };
}

/**
 * Text from a message as a terminal should show it: control characters
 * (escape sequences, carriage returns, direction overrides) spelled out, and
 * each further line indented, so that no message can pass for another line
 * of output, such as a message from someone else.
 */
function printable(text: string): string {
  return text.replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu, (character) =>
    character === '\n'
      ? '\n    '
      : character === '\t'
        ? character
        : `\\u{${(character.codePointAt(0) ?? 0).toString(16)}}`,
  );
}

/** A wait in words: "59 s", "1 h", "3 h 59 min". */
function formatWait(ms: number): string {
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes < 60) return `${minutes} min`;
  const rest = minutes % 60;
  return `${Math.floor(minutes / 60)} h${rest === 0 ? '' : ` ${rest} min`}`;
}

function formatVaultReport(report: VaultAttemptReport): string {
  if (report.destroyed) {
    return '*** your backup password vault was destroyed after 10 wrong passwords; only the recovery key restores now (`sotto backup reset-attempts` stops this notice)';
  }
  const times = report.failedAttempts > 1 ? ` ${report.failedAttempts} times` : '';
  const wait =
    report.nextTryAfterMs > 0 ? `; the next try is allowed in ${formatWait(report.nextTryAfterMs)}` : '';
  return `*** a wrong backup password was tried${times}; ${report.attemptsLeft} attempts left${wait} (if it was not you: \`sotto backup reset-attempts\`)`;
}

function formatVaultTries(vault: {
  attemptsLeft: number;
  failedAttempts: number;
  nextTryAfterMs: string;
}): string {
  const failed =
    vault.failedAttempts > 0
      ? `; ${vault.failedAttempts} wrong password${vault.failedAttempts === 1 ? '' : 's'} tried`
      : '';
  const wait = Number(vault.nextTryAfterMs);
  return `${vault.attemptsLeft} attempts left${failed}${wait > 0 ? `; next try in ${formatWait(wait)}` : ''}`;
}

function formatMessage(message: ReceivedMessage): string {
  const where = message.group === undefined ? '' : ` (group ${message.group})`;
  return `[${message.sentAt}] ${message.from}${where}: ${printable(message.text)}`;
}

function describeNotice(notice: Notice): string {
  const who = notice.contact;
  switch (notice.kind) {
    case 'safety-number-changed':
      return `the safety number with ${who} changed; nothing is sent to ${who} until you compare it (\`sotto safety-number ${who}\`) and accept it with \`sotto trust ${who}\``;
    case 'safety-number-accepted':
      return `you accepted the new safety number with ${who}`;
    case 'username-moved':
      return `the username ${who} now belongs to another account; what you send to ${who} goes to that account`;
    case 'undecryptable':
      return `a message from ${who} could not be decrypted`;
    case 'device-added':
      return `${who} added a device (device ${notice.deviceId}); what you send ${who} reaches it too`;
    case 'device-removed':
      return `${who} removed a device (device ${notice.deviceId})`;
    case 'group-changed':
      return `group ${notice.group}: ${printable(notice.change)}`;
    case 'group-update-refused':
      return `group ${notice.group}: refused a change sent by ${who} (${notice.reason}); the group is unchanged`;
  }
}

function formatNotice(notice: Notice): string {
  return `[${notice.at}] *** ${describeNotice(notice)}`;
}

function formatHistory(entry: HistoryEntry): string {
  if (entry.kind !== 'message') return formatNotice(entry);
  const to = entry.group === undefined ? printable(entry.to) : `group ${entry.group}`;
  const line = `[${entry.sentAt}] ${entry.from} → ${to}: ${printable(entry.text)}`;
  return entry.safetyNumberChanged ? `${line} (safety number changed)` : line;
}

/**
 * What `receive --json` prints for a message: the fields of the first version, whether it came
 * sealed, and the warning when there is one.
 */
function messageJson(message: ReceivedMessage): string {
  const { from, text, sentAt, guid, sealed } = message;
  return JSON.stringify({
    ...(message.group !== undefined && { group: message.group }),
    from,
    text,
    sentAt,
    guid,
    sealed,
    ...(message.safetyNumberChanged && { safetyNumberChanged: true }),
  });
}

function program(): Command {
  const cli = new Command('sotto')
    .description('Sotto: end-to-end encrypted messaging from the terminal.')
    .option('--server <host:port>', 'the Sotto gateway', process.env['SOTTO_SERVER'] ?? DEFAULT_SERVER)
    .option(
      '--profile <dir>',
      'where this device keeps its keys and history',
      process.env['SOTTO_PROFILE'] ?? join(homedir(), '.sotto'),
    )
    .option(
      '--ca <file>',
      "the CA (PEM) to verify the gateway's certificate with; default $SOTTO_CA, else the system's roots " +
        'and, in a checkout running `npm start`, the CA its .sotto/stack.json names for this gateway',
    )
    .showHelpAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => cli.opts<GlobalOptions>();
  const withClient = async (work: (client: SottoClient) => Promise<void>): Promise<void> => {
    const { server, profile, ca } = globals();
    const client = SottoClient.open({ profileDir: profile, server, ca });
    try {
      await work(client);
    } finally {
      client.close();
    }
  };

  cli
    .command('register')
    .argument('<username>', '3 to 32 characters of a-z, 0-9, _ and .')
    .description('create an account on the server, with this device as its first device')
    .action(async (username: string) => {
      const { server, profile, ca } = globals();
      const client = await SottoClient.register({ profileDir: profile, server, username, ca });
      client.close();
      print(`registered ${client.username} on ${server}; keys are in ${profile}`);
    });

  cli
    .command('link')
    .argument('<username>', 'the account this profile becomes a device of')
    .option('--wait <seconds>', 'how long to wait for a device of the account to approve', seconds, 120)
    .option('--name <name>', 'what the device is called in `sotto devices`', 'sotto CLI')
    .description(
      'make this (new) profile a linked device of an account: prints a link code to approve on a device of it',
    )
    .action(async (username: string, options: { wait: number; name: string }) => {
      const { server, profile, ca } = globals();
      const client = await SottoClient.link({
        profileDir: profile,
        server,
        ca,
        username,
        name: options.name,
        waitSeconds: options.wait,
        onCode: ({ code, fingerprint }) => {
          print(`link code: ${code}`);
          print(`fingerprint: ${fingerprint}`);
          print(
            `on a device of ${username.toLowerCase()}, run \`sotto devices approve <code>\` and check that it shows this fingerprint; waiting up to ${options.wait} s`,
          );
        },
      });
      client.close();
      print(`linked as device ${client.deviceId} of ${client.username}; keys are in ${profile}`);
    });

  const devices = cli
    .command('devices')
    .description("this account's devices: list, approve a new one, remove one");

  devices
    .command('list', { isDefault: true })
    .option('--json', 'one JSON object per device: {"deviceId","name","linkedAt","lastSeen","current"}')
    .description('the devices of this account (the default)')
    .action((options: { json?: boolean }) =>
      withClient(async (client) => {
        const { devices: listed, current } = await client.devices();
        for (const device of listed) {
          const isCurrent = device.deviceId === current;
          if (options.json) {
            print(
              JSON.stringify({
                deviceId: device.deviceId,
                name: device.name,
                linkedAt: new Date(Number(device.linkedAtMs)).toISOString(),
                lastSeen: Number(device.lastSeenMs) === 0 ? null : day(device.lastSeenMs),
                current: isCurrent,
              }),
            );
          } else {
            print(
              `${isCurrent ? '*' : ' '} ${device.deviceId}  ${printable(device.name) || '(no name)'}  linked ${day(device.linkedAtMs)}  last seen ${day(device.lastSeenMs)}${isCurrent ? '  (this device)' : ''}`,
            );
          }
        }
      }),
    );

  devices
    .command('approve')
    .argument('<code>', 'the link code the new device printed')
    .option('--history', 'also send the new device recent history')
    .description(
      "approve a new device: sends it this account's keys and contacts, end to end encrypted; compare the fingerprint first",
    )
    .action((code: string, options: { history?: boolean }) =>
      withClient(async (client) => {
        const approved = await client.approveLink(code, { history: options.history ?? false });
        print(`fingerprint: ${approved.fingerprint} (the new device shows the same)`);
        print(`approved device ${approved.deviceId}`);
      }),
    );

  devices
    .command('remove')
    .argument('<id>', 'the device to unlink (see `sotto devices`)', deviceId)
    .description('unlink a device: its credential stops working, and contacts stop encrypting to it')
    .action((id: number) =>
      withClient(async (client) => {
        await client.removeDevice(id);
        print(`removed device ${id}`);
      }),
    );

  cli
    .command('send')
    .argument('<username>', 'who to send to')
    .argument('<text>', 'the message')
    .description('encrypt a message for every device of a user and send it')
    .action((username: string, text: string) =>
      withClient(async (client) => {
        // A device a contact added (or removed), learned while sending, is told above the result.
        const stop = client.onNotice((notice) => print(formatNotice(notice)));
        try {
          await client.send(username, text);
        } finally {
          stop();
        }
        print(`sent to ${username.toLowerCase()}`);
      }),
    );

  cli
    .command('receive')
    .description('fetch, decrypt and acknowledge everything queued, then keep listening for a while')
    .option('--wait <seconds>', 'keep listening this long after the queue is drained', seconds, 0)
    .option(
      '--json',
      'one JSON object per line: {"from","text","sentAt","guid","sealed"} for a message ("group": its id, for a group message; "sealed": true when it came with sealed sender; "safetyNumberChanged": true while a new safety number is not accepted), a notice with its "kind" (e.g. "device-added", with "contact" and "deviceId"), or {"vaultAttemptFailed":{...}}',
    )
    .action((options: { wait: number; json?: boolean }) =>
      withClient(async (client) => {
        let undecryptable = 0;
        // A sender whose new safety number is not accepted gets the warning once, above their first message.
        const warned = new Set<string>();
        const warn = (contact: string, at: string): void => {
          if (warned.has(contact)) return;
          warned.add(contact);
          print(formatNotice({ kind: 'safety-number-changed', contact, at }));
        };
        await client.receive({
          waitSeconds: options.wait,
          onVaultAttemptFailed: (report) =>
            print(options.json ? JSON.stringify({ vaultAttemptFailed: report }) : formatVaultReport(report)),
          onNotice: (notice) => {
            if (notice.kind === 'undecryptable') undecryptable++;
            if (options.json) print(JSON.stringify(notice));
            else if (notice.kind === 'safety-number-changed') warn(notice.contact, notice.at);
            else print(formatNotice(notice));
          },
          onMessage: (message) => {
            if (options.json) {
              print(messageJson(message));
            } else {
              if (message.safetyNumberChanged) warn(message.from, new Date().toISOString());
              print(formatMessage(message));
            }
          },
        });
        if (undecryptable > 0 && !options.json) {
          print(
            `${undecryptable} message${undecryptable === 1 ? '' : 's'} could not be decrypted (acknowledged, and noted in history)`,
          );
        }
      }),
    );

  cli
    .command('history')
    .argument('[username]', 'only the conversation with this user')
    .option('--group <id>', "only this group's messages and changes")
    .option('--json', 'one JSON object per line')
    .description('the local conversation, sent and received, oldest first')
    .action((username: string | undefined, options: { json?: boolean; group?: string }) =>
      withClient((client) => {
        if (username !== undefined && options.group !== undefined)
          throw new Error('give a username or --group, not both');
        const entries =
          options.group === undefined ? client.history(username) : client.groupHistory(options.group);
        for (const entry of entries) print(options.json ? JSON.stringify(entry) : formatHistory(entry));
        return Promise.resolve();
      }),
    );

  const group = cli
    .command('group')
    .description('group conversations: membership signed by admins, messages sealed in one upload');

  group
    .command('create')
    .argument('<title>', "the group's title")
    .argument('<usernames...>', 'the first members besides you')
    .description('make a group with you as its admin; prints `group <id>`')
    .action((title: string, usernames: string[]) =>
      withClient(async (client) => {
        print(`group ${await client.createGroup(title, usernames)}`);
      }),
    );

  group
    .command('add')
    .argument('<id>', 'the group')
    .argument('<usernames...>', 'who to add')
    .description('(admins) add members; they read what is sent from now on')
    .action((id: string, usernames: string[]) =>
      withClient(async (client) => {
        await client.addToGroup(id, usernames);
        print(`added ${usernames.map((name) => name.toLowerCase()).join(', ')} to group ${id.toLowerCase()}`);
      }),
    );

  group
    .command('remove')
    .argument('<id>', 'the group')
    .argument('<usernames...>', 'who to remove')
    .description('(admins) remove members; what is sent from now on is under new keys they never get')
    .action((id: string, usernames: string[]) =>
      withClient(async (client) => {
        await client.removeFromGroup(id, usernames);
        print(
          `removed ${usernames.map((name) => name.toLowerCase()).join(', ')} from group ${id.toLowerCase()}`,
        );
      }),
    );

  group
    .command('leave')
    .argument('<id>', 'the group')
    .description('leave a group; its members are told')
    .action((id: string) =>
      withClient(async (client) => {
        const { newAdmin } = await client.leaveGroup(id);
        print(
          `left group ${id.toLowerCase()}${newAdmin === undefined ? '' : `; ${newAdmin} is its admin now`}`,
        );
      }),
    );

  group
    .command('list')
    .option('--json', 'one JSON object per group: {"id","title","version","member","members":[usernames]}')
    .description('the groups this device knows')
    .action((options: { json?: boolean }) =>
      withClient(async (client) => {
        for (const listed of await client.listGroups()) {
          const names = listed.members.map((member) => member.username);
          if (options.json) {
            const { id, title, version, member } = listed;
            print(JSON.stringify({ id, title, version, member, members: names }));
          } else {
            const count = `${names.length} member${names.length === 1 ? '' : 's'}`;
            print(
              `${listed.id}  ${printable(listed.title)}  ${count}${listed.member ? '' : '  (you are not a member)'}`,
            );
          }
        }
      }),
    );

  group
    .command('members')
    .argument('<id>', 'the group')
    .option('--json', 'one JSON object per member: {"username","accountId","admin"}')
    .description("a group's members, as its admins signed them")
    .action((id: string, options: { json?: boolean }) =>
      withClient(async (client) => {
        for (const member of await client.groupMembers(id))
          print(
            options.json ? JSON.stringify(member) : `${member.username}${member.admin ? '  (admin)' : ''}`,
          );
      }),
    );

  group
    .command('send')
    .argument('<id>', 'the group')
    .argument('<text>', 'the message')
    .description('encrypt a message once for the group and send it to every member in one upload')
    .action((id: string, text: string) =>
      withClient(async (client) => {
        const { pairwise, why } = await client.sendToGroup(id, text);
        // Members this device can't include in the one upload get it one by one, sealed where possible.
        const oneByOne =
          pairwise > 0 ? ` (${pairwise} member${pairwise === 1 ? '' : 's'} one by one: ${why ?? ''})` : '';
        print(`sent to group ${id.toLowerCase()}${oneByOne}`);
      }),
    );

  cli
    .command('safety-number')
    .argument('<username>', 'the contact to compare with')
    .description('the 60-digit number to compare with the contact; it is the same on both devices')
    .action((username: string) =>
      withClient(async (client) => {
        print(await client.safetyNumber(username));
      }),
    );

  cli
    .command('rotate-secret')
    .description(
      'give this device a new secret; the old one stops working everywhere, so a copy of it is useless',
    )
    .action(() =>
      withClient(async (client) => {
        await client.rotateSecret();
        print(`rotated the device secret of ${client.username}; the old one no longer works`);
      }),
    );

  cli
    .command('sealed-sender')
    .argument('<who>', "'contacts' (the default) or 'anyone'", sealedSenders)
    .description(
      'who may send you sealed messages, whose sender the server never learns: contacts holding your profile key, or anyone',
    )
    .action((who: 'contacts' | 'anyone') =>
      withClient(async (client) => {
        await client.acceptSealedFromAnyone(who === 'anyone');
        print(
          who === 'anyone'
            ? `${client.username} accepts sealed messages from anyone`
            : `${client.username} accepts sealed messages from contacts holding its profile key`,
        );
      }),
    );

  cli
    .command('trust')
    .argument('<username>', 'the contact whose new safety number you compared')
    .description(
      "accept a contact's changed safety number, once you compared it with them; sending to them works again",
    )
    .action((username: string) =>
      withClient(async (client) => {
        const name = username.toLowerCase();
        const trusted = await client.trust(name);
        print(
          trusted.changed
            ? `accepted the new safety number with ${name} (${trusted.safetyNumber}); sending to ${name} works again`
            : `the safety number with ${name} has not changed (${trusted.safetyNumber}); nothing to accept`,
        );
      }),
    );

  const backup = cli.command('backup').description('encrypted backups of history and contacts');

  backup
    .command('create')
    .description('encrypt history and contacts here, upload them, and print the recovery key')
    .option('--password-stdin', 'also protect the recovery key with a password read from standard input')
    .action((options: { passwordStdin?: boolean }) =>
      withClient(async (client) => {
        const password = options.passwordStdin ? await readStdin('password') : undefined;
        const made = await client.createBackup({
          password,
          onProgress: progressBar('uploading'),
          onBusy: ({ waitMs }) =>
            process.stderr.write(
              `${process.stderr.isTTY ? '\n' : ''}the backup store is busy; resuming in ${Math.ceil(waitMs / 1000)} s\n`,
            ),
        });
        print(
          `backup version ${made.version.version} uploaded (${made.version.size} bytes)${
            made.passwordProtected ? '; the recovery key is also protected by your password' : ''
          }`,
        );
        if (made.newRecoveryKey) {
          print(
            'Recovery key (write it down now; it is shown only this once, and with it alone you can restore this account):',
          );
          print(made.recoveryKey);
        } else {
          print('encrypted under the recovery key shown with your first backup');
        }
      }),
    );

  backup
    .command('restore')
    .argument('<username>', 'the account to restore')
    .option('--recovery-key-stdin', 'read the 64-character recovery key from standard input')
    .option('--password-stdin', 'read the backup password from standard input')
    .description('on a new profile: take the account over and restore its newest backup')
    .action(async (username: string, options: { recoveryKeyStdin?: boolean; passwordStdin?: boolean }) => {
      if (Boolean(options.recoveryKeyStdin) === Boolean(options.passwordStdin)) {
        throw new Error('give exactly one of --recovery-key-stdin and --password-stdin');
      }
      const { server, profile, ca } = globals();
      const secret = await readStdin(options.recoveryKeyStdin ? 'recovery key' : 'password');
      const restored = await SottoClient.restore({
        profileDir: profile,
        server,
        ca,
        username,
        ...(options.recoveryKeyStdin ? { recoveryKey: secret } : { password: secret }),
        onProgress: progressBar('downloading'),
      });
      restored.client.close();
      print(
        `restored ${restored.client.username} from backup version ${restored.version.version}: ${restored.historyEntries} history entries; the other devices are signed out`,
      );
    });

  backup
    .command('status')
    .option('--json', 'print one JSON object')
    .description('the newest backup, its size and time, and whether a password vault is set')
    .action((options: { json?: boolean }) =>
      withClient(async (client) => {
        const status = await client.backupStatus();
        const newest = status.versions[0];
        const vault = status.vault;
        if (options.json) {
          print(
            JSON.stringify({
              newest: newest
                ? {
                    version: Number(newest.version),
                    size: Number(newest.size),
                    createdAt: new Date(Number(newest.createdAtMs)).toISOString(),
                  }
                : null,
              versions: status.versions.length,
              quotaBytes: Number(status.quotaBytes),
              usedBytes: Number(status.usedBytes),
              passwordVault: vault?.hasVault ?? false,
              vaultAttemptsLeft: vault?.attemptsLeft ?? 0,
              vaultFailedAttempts: vault?.failedAttempts ?? 0,
              vaultNextTryAfterMs: Number(vault?.nextTryAfterMs ?? 0),
              vaultDestroyed: vault?.destroyed ?? false,
            }),
          );
          return;
        }
        print(
          newest
            ? `newest backup: version ${newest.version}, ${newest.size} bytes, made ${new Date(Number(newest.createdAtMs)).toISOString()}`
            : 'no backup yet',
        );
        print(
          `versions kept: ${status.versions.length}; quota used: ${status.usedBytes} of ${status.quotaBytes} bytes`,
        );
        print(
          vault?.hasVault
            ? `password vault: set (${formatVaultTries(vault)})`
            : vault?.destroyed
              ? 'password vault: destroyed after 10 failed attempts; restore with the recovery key'
              : 'password vault: not set',
        );
      }),
    );

  backup
    .command('reset-attempts')
    .description(
      "give the password vault its 10 tries back after someone else's wrong passwords (once a day)",
    )
    .action(() =>
      withClient(async (client) => {
        const vault = await client.resetVaultAttempts();
        print(
          vault.hasVault
            ? `password vault: the count is cleared (${formatVaultTries(vault)})`
            : 'password vault: not set (the notice that it was destroyed is cleared; protect the recovery key with a new password with `sotto backup create --password-stdin`)',
        );
      }),
    );

  cli
    .command('status')
    .description('check that the gateway is up and serving')
    .option('--json', 'print one JSON object')
    .action(async (options: { json?: boolean }) => {
      const { server, ca } = globals();
      const status = await serverStatus(parseServerAddress(server), { ca });
      if (options.json) {
        print(JSON.stringify(status));
      } else {
        const text = status.serving
          ? 'serving'
          : status.detail === 'NOT_SERVING'
            ? 'not serving'
            : status.detail;
        print(`${status.server}: ${text}`);
      }
      if (!status.serving) process.exitCode = 1;
    });

  return cli;
}

/**
 * grpc-js sends the server's address as the TLS server name even when it is
 * an IP address (127.0.0.1:7400), and Node warns about that (DEP0123) once
 * per process. That warning says nothing to a person using the CLI; every
 * other warning is still printed.
 */
function quietIpServerNameWarning(): void {
  const listeners = process.listeners('warning');
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code !== 'DEP0123') for (const listener of listeners) listener(warning);
  });
}

async function main(argv: string[]): Promise<void> {
  quietIpServerNameWarning();
  try {
    await program().parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; usage errors were already explained by commander.
      process.exitCode = error.exitCode;
      return;
    }
    process.stderr.write(`sotto: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

void main(process.argv);
