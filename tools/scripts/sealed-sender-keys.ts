/**
 * `npm run sealed-sender:keys`: makes the keys behind sealed-sender
 * certificates, for an operator. A trust root (clients pin its public key),
 * and a server key the trust root certifies (libsignal ServerCertificate):
 * the gateway's two secrets, SENDER_CERTIFICATE_SERVER_CERTIFICATE and
 * SENDER_CERTIFICATE_SERVER_KEY. The trust root's private key is printed once,
 * to be kept offline: it is needed only to certify a later server key
 * (`--trust-root-key FILE`), never by a service.
 *
 *   npm run sealed-sender:keys -- [--key-id N] [--trust-root-key FILE] [--out DIR]
 *
 * With `--out DIR`, the gateway's secrets go to files named after their
 * variables (readable by the owner only; existing files are never
 * overwritten) and the trust root's public key to DIR/trust-root.pub;
 * without it, everything is printed.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import {
  makeSenderCertificateKeys,
  senderCertificateVariables,
  type SenderCertificateKeys,
} from '@sotto/stack';

interface Options {
  readonly keyId: number;
  readonly trustRootKey?: string;
  readonly out?: string;
}

function keyId(value: string): number {
  const id = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(id) || id > 0xffff_ffff) {
    throw new InvalidArgumentError('expected a whole number from 0 to 4294967295');
  }
  return id;
}

/** The base64 private key in `file`, as this command printed it. */
function trustRootPrivateKey(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(text)) {
    throw new Error(
      `${file}: expected the trust root's private key as this command printed it (44 characters of base64)`,
    );
  }
  return text;
}

/** The files --out writes, all checked to be new before any is written. */
function outputFiles(
  dir: string,
  keys: SenderCertificateKeys,
): { path: string; text: string; mode: number }[] {
  const secrets = Object.entries(senderCertificateVariables(keys)).map(([name, value]) => ({
    path: join(dir, name),
    text: `${value}\n`,
    mode: 0o600,
  }));
  return [...secrets, { path: join(dir, 'trust-root.pub'), text: `${keys.trustRoot}\n`, mode: 0o644 }];
}

function writeNew(files: { path: string; text: string; mode: number }[]): void {
  const existing = files.filter((file) => existsSync(file.path)).map((file) => file.path);
  if (existing.length > 0) throw new Error(`will not overwrite ${existing.join(', ')}`);
  for (const { path, text, mode } of files) {
    const fd = openSync(path, 'wx', mode);
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }
}

function run(options: Options): void {
  const reused = options.trustRootKey === undefined ? undefined : trustRootPrivateKey(options.trustRootKey);
  let keys: SenderCertificateKeys;
  try {
    keys = makeSenderCertificateKeys({ keyId: options.keyId, trustRootPrivateKey: reused });
  } catch {
    throw new Error(`${options.trustRootKey ?? 'the trust root key'}: not a libsignal private key`);
  }
  const say = (line: string): void => void process.stdout.write(`${line}\n`);
  if (options.out === undefined) {
    say('# The gateway\'s secrets (keep them in a Secret; see README "Sealed sender"):');
    for (const [name, value] of Object.entries(senderCertificateVariables(keys))) say(`${name}=${value}`);
  } else {
    mkdirSync(options.out, { recursive: true });
    const files = outputFiles(options.out, keys);
    writeNew(files);
    say(
      `# The gateway's secrets: ${files
        .slice(0, 2)
        .map((file) => file.path)
        .join(', ')}`,
    );
  }
  say(
    `# Trust root, public (clients pin it, as SOTTO_SENDER_CERTIFICATE_TRUST_ROOT; server key id ${keys.keyId}):`,
  );
  say(`SOTTO_SENDER_CERTIFICATE_TRUST_ROOT=${keys.trustRoot}`);
  if (reused === undefined) {
    say('# Trust root, PRIVATE: shown only now. Keep it offline; no service needs it, and it is the');
    say('# only way to certify a new server key that clients already trust (--trust-root-key FILE).');
    say(`SENDER_CERTIFICATE_TRUST_ROOT_PRIVATE_KEY=${keys.trustRootPrivateKey}`);
  }
}

const program = new Command('sealed-sender:keys')
  .description('make a sealed-sender trust root and the gateway server certificate and key it signs')
  .option('--key-id <n>', 'the server key id the certificate carries (a new one for each new key)', keyId, 1)
  .option('--trust-root-key <file>', "certify a new server key under this existing trust root's private key")
  .option(
    '--out <dir>',
    "write the gateway's secrets and the trust root's public key to files in this directory",
  )
  .action((options: Options) => {
    try {
      run(options);
    } catch (error) {
      process.stderr.write(`sealed-sender:keys: ${(error as Error).message}\n`);
      process.exitCode = 1;
    }
  });

program.parse();
