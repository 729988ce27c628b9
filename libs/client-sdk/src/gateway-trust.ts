import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createSecureContext, rootCertificates } from 'node:tls';
import { credentials, type ChannelCredentials } from '@grpc/grpc-js';
import { TLS_MIN_VERSION } from '@sotto/contracts';
import { SottoError } from './errors';

/** Where a client finds the CA it verifies the gateway's certificate with. */
export interface GatewayTrustOptions {
  /** A PEM file of the CA to trust instead of any other (`--ca FILE`). */
  readonly ca?: string;
  /** Read for SOTTO_CA and SOTTO_STATE_DIR; the process's by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Where to look for a checkout's `.sotto/stack.json`; the working directory by default. */
  readonly cwd?: string;
}

/** Which CA a connection to the gateway trusts, and why. */
export type GatewayTrust =
  | { readonly source: 'ca-file'; readonly ca: string }
  | { readonly source: 'system' }
  | { readonly source: 'system+stack'; readonly ca: string; readonly stackFile: string };

function readCa(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new SottoError(
      `cannot read the CA certificate ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`,
    );
  }
}

/** The stack.json files a checkout running `npm start` may have, nearest first. */
function stackFiles(env: GatewayTrustOptions['env'], cwd: string): string[] {
  const files: string[] = [];
  const stateDir = env?.['SOTTO_STATE_DIR'];
  if (stateDir) files.push(join(resolve(cwd, stateDir), 'stack.json'));
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    files.push(join(dir, '.sotto', 'stack.json'));
    if (dirname(dir) === dir) return files;
  }
}

/** What a client reads of a stack.json. */
interface LocalStack {
  gateway?: unknown;
  tls?: { ca?: unknown };
  senderCertificateTrustRoot?: unknown;
}

/**
 * A string that the nearest stack.json naming this gateway holds at `pick`
 * (one `npm start` wrote), with the file it came from.
 */
function fromLocalStack(
  server: string,
  env: GatewayTrustOptions['env'],
  cwd: string,
  pick: (stack: LocalStack) => unknown,
): { value: string; stackFile: string } | undefined {
  for (const stackFile of stackFiles(env, cwd)) {
    if (!existsSync(stackFile)) continue;
    try {
      const stack = JSON.parse(readFileSync(stackFile, 'utf8')) as LocalStack;
      const value = stack.gateway === server ? pick(stack) : undefined;
      if (typeof value === 'string') return { value, stackFile };
    } catch {
      // Not a stack file of ours: keep looking.
    }
  }
  return undefined;
}

/** The CA `npm start` made, if a stack.json near here names this gateway. */
function localStackCa(server: string, env: GatewayTrustOptions['env'], cwd: string) {
  const local = fromLocalStack(server, env, cwd, (stack) => stack.tls?.ca);
  return local === undefined ? undefined : { ca: local.value, stackFile: local.stackFile };
}

/**
 * Which CA to verify the gateway at `server` with: the file given, else
 * SOTTO_CA, else the system's roots, together with the CA of a local
 * platform (`npm start`) when this directory is in a checkout whose
 * `.sotto/stack.json` (or `$SOTTO_STATE_DIR/stack.json`) names this gateway.
 */
export function gatewayTrust(server: string, options: GatewayTrustOptions = {}): GatewayTrust {
  const env = options.env ?? process.env;
  const explicit = options.ca ?? (env['SOTTO_CA'] || undefined);
  if (explicit !== undefined) return { source: 'ca-file', ca: explicit };
  const local = localStackCa(server, env, options.cwd ?? process.cwd());
  return local === undefined ? { source: 'system' } : { source: 'system+stack', ...local };
}

/**
 * TLS 1.3 to the gateway, verifying its certificate and its name against the
 * CA gatewayTrust picks. Nothing is ever sent in the clear.
 */
export function gatewayCredentials(server: string, options: GatewayTrustOptions = {}): ChannelCredentials {
  const trust = gatewayTrust(server, options);
  switch (trust.source) {
    case 'ca-file':
      return credentials.createFromSecureContext(
        createSecureContext({ ca: readCa(trust.ca), minVersion: TLS_MIN_VERSION }),
      );
    case 'system':
      // No `ca`: Node's roots, with NODE_EXTRA_CA_CERTS if set.
      return credentials.createFromSecureContext(createSecureContext({ minVersion: TLS_MIN_VERSION }));
    case 'system+stack':
      return credentials.createFromSecureContext(
        createSecureContext({ ca: [...rootCertificates, readCa(trust.ca)], minVersion: TLS_MIN_VERSION }),
      );
  }
}

/**
 * The sealed-sender trust root (a libsignal PublicKey, base64) that sender
 * certificates from the gateway at `server` must chain to: the one given,
 * else SOTTO_SENDER_CERTIFICATE_TRUST_ROOT, else that of a local platform
 * whose stack.json names this gateway (as for the CA, see gatewayTrust);
 * undefined if none is known.
 */
export function senderCertificateTrustRoot(
  server: string,
  options: { readonly trustRoot?: string } & Omit<GatewayTrustOptions, 'ca'> = {},
): string | undefined {
  const env = options.env ?? process.env;
  const explicit = options.trustRoot ?? (env['SOTTO_SENDER_CERTIFICATE_TRUST_ROOT'] || undefined);
  if (explicit !== undefined) return explicit;
  const cwd = options.cwd ?? process.cwd();
  return fromLocalStack(server, env, cwd, (stack) => stack.senderCertificateTrustRoot)?.value;
}
