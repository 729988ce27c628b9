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
}

const print = (line: string): void => void process.stdout.write(`${line}\n`);

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed < 0)
    throw new InvalidArgumentError('expected a number of seconds, 0 or more');
  return parsed;
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
    .showHelpAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => cli.opts<GlobalOptions>();
  const withClient = async (work: (client: SottoClient) => Promise<void>): Promise<void> => {
    const { server, profile } = globals();
    const client = SottoClient.open({ profileDir: profile, server });
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
      const { server, profile } = globals();
      const client = await SottoClient.register({ profileDir: profile, server, username });
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

  cli
    .command('status')
    .description('check that the gateway is up and serving')
    .option('--json', 'print one JSON object')
    .action(async (options: { json?: boolean }) => {
      const status = await serverStatus(parseServerAddress(globals().server));
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

async function main(argv: string[]): Promise<void> {
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
