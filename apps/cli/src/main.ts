import { homedir } from 'node:os';
import { join } from 'node:path';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import {
  DEFAULT_SERVER,
  SottoClient,
  parseServerAddress,
  serverStatus,
  type HistoryEntry,
  type ReceivedMessage,
} from '@sotto/client-sdk';

interface GlobalOptions {
  server: string;
  profile: string;
  ca?: string;
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

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

function formatMessage(message: ReceivedMessage): string {
  return `[${message.sentAt}] ${message.from}: ${message.text}`;
}

function formatHistory(entry: HistoryEntry): string {
  return entry.kind === 'message'
    ? `[${entry.sentAt}] ${entry.from} → ${entry.to}: ${entry.text}`
    : `[${entry.at}] *** the safety number with ${entry.contact} changed; compare it again with \`sotto safety-number ${entry.contact}\``;
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
    .command('send')
    .argument('<username>', 'who to send to')
    .argument('<text>', 'the message')
    .description('encrypt a message for every device of a user and send it')
    .action((username: string, text: string) =>
      withClient(async (client) => {
        await client.send(username, text);
        print(`sent to ${username.toLowerCase()}`);
      }),
    );

  cli
    .command('receive')
    .description('fetch, decrypt and acknowledge everything queued, then keep listening for a while')
    .option('--wait <seconds>', 'keep listening this long after the queue is drained', seconds, 0)
    .option('--json', 'one JSON object per line: {"from","text","sentAt","guid"}')
    .action((options: { wait: number; json?: boolean }) =>
      withClient(async (client) => {
        await client.receive({
          waitSeconds: options.wait,
          onMessage: (message) =>
            print(
              options.json
                ? JSON.stringify({
                    from: message.from,
                    text: message.text,
                    sentAt: message.sentAt,
                    guid: message.guid,
                  })
                : formatMessage(message),
            ),
        });
      }),
    );

  cli
    .command('history')
    .argument('[username]', 'only the conversation with this user')
    .option('--json', 'one JSON object per line')
    .description('the local conversation, sent and received, oldest first')
    .action((username: string | undefined, options: { json?: boolean }) =>
      withClient((client) => {
        for (const entry of client.history(username))
          print(options.json ? JSON.stringify(entry) : formatHistory(entry));
        return Promise.resolve();
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

  const backup = cli.command('backup').description('encrypted backups of history and contacts');

  backup
    .command('create')
    .description('encrypt history and contacts here, upload them, and print the recovery key')
    .option('--password-stdin', 'also protect the recovery key with a password read from standard input')
    .action((options: { passwordStdin?: boolean }) =>
      withClient(async (client) => {
        const password = options.passwordStdin ? await readStdin('password') : undefined;
        const made = await client.createBackup({ password, onProgress: progressBar('uploading') });
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
            ? `password vault: set (${vault.attemptsLeft} attempts left)`
            : vault?.destroyed
              ? 'password vault: destroyed after 10 failed attempts; restore with the recovery key'
              : 'password vault: not set',
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
