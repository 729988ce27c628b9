import { Command, CommanderError } from 'commander';
import { DEFAULT_SERVER, parseServerAddress, serverStatus } from '@sotto/client-sdk';

interface GlobalOptions {
  server: string;
  profile: string;
}

function program(): Command {
  const cli = new Command('sotto')
    .description('Sotto: end-to-end encrypted messaging from the terminal.')
    .option('--server <host:port>', 'the Sotto gateway', process.env['SOTTO_SERVER'] ?? DEFAULT_SERVER)
    .option(
      '--profile <dir>',
      'where this device keeps its keys and history',
      process.env['SOTTO_PROFILE'] ?? `${process.env['HOME'] ?? '.'}/.sotto`,
    )
    .showHelpAfterError()
    .exitOverride();

  cli
    .command('status')
    .description('check that the gateway is up and serving')
    .option('--json', 'print one JSON object')
    .action(async (options: { json?: boolean }) => {
      const { server } = cli.opts<GlobalOptions>();
      const status = await serverStatus(parseServerAddress(server));
      if (options.json) {
        process.stdout.write(`${JSON.stringify(status)}\n`);
      } else {
        const text = status.serving ? 'serving' : status.detail === 'NOT_SERVING' ? 'not serving' : status.detail;
        process.stdout.write(`${status.server}: ${text}\n`);
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
