import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { run, which } from './system';
import { silentLogger, type Logger, type SoftHsmToken } from './types';

/** The token the key-vault keeps its sealing key in, locally. */
export const SOFTHSM_TOKEN_LABEL = 'sotto-vault';

/** Where Debian (and other distributions) put SoftHSM2's PKCS#11 library. */
function moduleCandidates(): string[] {
  const multiarch = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu' }[process.arch as string];
  return [
    '/usr/lib/softhsm/libsofthsm2.so',
    ...(multiarch ? [`/usr/lib/${multiarch}/softhsm/libsofthsm2.so`] : []),
    '/usr/local/lib/softhsm/libsofthsm2.so',
    '/usr/lib64/pkcs11/libsofthsm2.so',
    '/opt/homebrew/lib/softhsm/libsofthsm2.so',
  ];
}

function softHsmModule(): string | undefined {
  return moduleCandidates().find((path) => existsSync(path));
}

interface Pins {
  pin: string;
  soPin: string;
}

/** Random PINs made once per data dir and kept there: local-only, never in the repository. */
function pins(file: string): Pins {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Pins;
  const made = { pin: randomBytes(12).toString('hex'), soPin: randomBytes(12).toString('hex') };
  writeFileSync(file, `${JSON.stringify(made)}\n`, { mode: 0o600 });
  return made;
}

/** Labels of the initialised tokens in this configuration, as softhsm2-util lists them. */
async function tokenLabels(util: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const result = await run(util, ['--show-slots'], { env });
  if (result.code !== 0) {
    throw new Error(
      `softhsm2-util --show-slots failed (exit ${String(result.code)}):\n${result.output.trim()}`,
    );
  }
  return [...result.output.matchAll(/^\s*Label:\s*(.*?)\s*$/gm)].map((match) => match[1] ?? '');
}

function softHsmUtil(): string {
  const util = which('softhsm2-util');
  if (util === undefined)
    throw new Error('softhsm2-util not found on PATH; install the Debian package softhsm2');
  return util;
}

/**
 * Initialises a token with this label in the configuration's token directory,
 * unless one is there already (--init-token --free would make a second one).
 */
export async function initSoftHsmToken(opts: {
  softHsmConf: string;
  label: string;
  pin: string;
  soPin: string;
  logger?: Logger;
}): Promise<void> {
  const util = softHsmUtil();
  const env = { ...process.env, SOFTHSM2_CONF: opts.softHsmConf };
  if ((await tokenLabels(util, env)).includes(opts.label)) return;
  (opts.logger ?? silentLogger).info(`softhsm: initialising token ${opts.label}`);
  const result = await run(
    util,
    ['--init-token', '--free', '--label', opts.label, '--pin', opts.pin, '--so-pin', opts.soPin],
    { env },
  );
  if (result.code !== 0) {
    throw new Error(
      `softhsm2-util --init-token failed (exit ${String(result.code)}):\n${result.output.trim()}`,
    );
  }
}

/**
 * A SoftHSM2 token for the key-vault under dataDir: its own softhsm2.conf and
 * token directory, the token initialised on first use and kept afterwards,
 * so that keys made in it survive restarts. Nothing runs: SoftHSM2 is a
 * library the vault loads, pointed here by SOFTHSM2_CONF.
 */
export async function prepareSoftHsm(opts: { dataDir: string; logger?: Logger }): Promise<SoftHsmToken> {
  const dataDir = resolve(opts.dataDir);
  const tokenDir = join(dataDir, 'tokens');
  mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
  softHsmUtil();
  const modulePath = softHsmModule();
  if (modulePath === undefined) {
    throw new Error(
      `libsofthsm2.so not found in ${moduleCandidates().join(', ')}; install the Debian package softhsm2`,
    );
  }
  const softHsmConf = join(dataDir, 'softhsm2.conf');
  const conf = [
    `directories.tokendir = ${tokenDir}`,
    'objectstore.backend = file',
    'log.level = ERROR',
    'slots.removable = false',
    '',
  ].join('\n');
  // Rewritten only when it changed: a vault starting meanwhile must never read it half-written.
  if (!existsSync(softHsmConf) || readFileSync(softHsmConf, 'utf8') !== conf)
    writeFileSync(softHsmConf, conf);
  const { pin, soPin } = pins(join(dataDir, 'pins.json'));
  await initSoftHsmToken({ softHsmConf, label: SOFTHSM_TOKEN_LABEL, pin, soPin, logger: opts.logger });
  return { modulePath, softHsmConf, tokenLabel: SOFTHSM_TOKEN_LABEL, pin };
}
