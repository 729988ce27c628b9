// @peculiar/x509 resolves its algorithms through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto, X509Certificate as NodeX509 } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import * as x509 from '@peculiar/x509';

/** Where progress is reported. */
export interface Logger {
  info(message: string): void;
}

const silentLogger: Logger = { info: () => undefined };

/** A certificate and its private key, as PEM files. */
export interface TlsIdentityFiles {
  readonly cert: string;
  readonly key: string;
}

/** A local certificate authority and the identities it issued. */
export interface LocalPki {
  /** The CA certificate (PEM) that every process and client of this machine's platform trusts. */
  readonly ca: string;
  /** Each identity's certificate and key, by name (`gateway`, …, `operator`). */
  readonly identities: Readonly<Record<string, TlsIdentityFiles>>;
}

/** The identity a certificate names, as a URI SAN: `spiffe://sotto/<name>`. */
export const spiffeUri = (name: string): string => `spiffe://sotto/${name}`;

const DAY_MS = 24 * 60 * 60 * 1000;
/** The CA lives a year and is replaced a month before it ends (and every certificate with it). */
const CA_LIFETIME_MS = 365 * DAY_MS;
const CA_RENEW_BEFORE_MS = 30 * DAY_MS;
/** Leaf certificates are short-lived: a week, renewed when less than two days are left. */
const LEAF_LIFETIME_MS = 7 * DAY_MS;
const LEAF_RENEW_BEFORE_MS = 2 * DAY_MS;
/** Clocks of the processes on one machine agree, but not to the millisecond. */
const BACKDATE_MS = 5 * 60 * 1000;

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
// Node's Web Crypto, under the DOM type @peculiar/x509 declares it with.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type SubjectAltName = { type: 'dns' | 'ip' | 'url'; value: string };

/** What a leaf must say: its SANs and what it is for. Stored beside it, to see when this changes. */
interface LeafSpec {
  readonly server: boolean;
  readonly sans: readonly SubjectAltName[];
}

function sansOf(name: string, server: boolean, hosts: readonly string[]): SubjectAltName[] {
  const names: SubjectAltName[] = [{ type: 'url', value: spiffeUri(name) }];
  if (!server) return names;
  const all = [...new Set(['localhost', '127.0.0.1', '::1', name, ...hosts])];
  return [
    ...names,
    ...all.map((host): SubjectAltName =>
      isIP(host) ? { type: 'ip', value: host } : { type: 'dns', value: host },
    ),
  ];
}

function writeAtomically(file: string, content: string, mode: number): void {
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, file);
}

async function newKeyPair(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  return crypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(pem), ECDSA_P256, false, ['sign']);
}

/** True if the PEM file holds a certificate valid for at least `margin` more, issued by `ca` when given. */
function stillGood(file: string, marginMs: number, ca?: NodeX509): boolean {
  if (!existsSync(file)) return false;
  try {
    const cert = new NodeX509(readFileSync(file));
    if (Date.parse(cert.validTo) - Date.now() < marginMs) return false;
    return ca === undefined || (cert.checkIssued(ca) && cert.verify(ca.publicKey));
  } catch {
    return false;
  }
}

const randomSerial = (): string => Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString('hex');

async function createCa(dir: string): Promise<void> {
  const keys = await newKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: 'CN=Sotto local CA',
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + CA_LIFETIME_MS),
    signingAlgorithm: ECDSA_P256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeAtomically(join(dir, 'ca.key'), await privateKeyPem(keys.privateKey), 0o600);
  writeAtomically(join(dir, 'ca.crt'), cert.toString('pem'), 0o644);
}

async function issueLeaf(dir: string, name: string, spec: LeafSpec): Promise<void> {
  const caCert = new x509.X509Certificate(readFileSync(join(dir, 'ca.crt'), 'utf8'));
  const caKey = await importPrivateKey(readFileSync(join(dir, 'ca.key'), 'utf8'));
  const keys = await newKeyPair();
  const now = Date.now();
  const usages = spec.server
    ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]
    : [x509.ExtendedKeyUsage.clientAuth];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${name}`,
    issuer: caCert.subject,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(Math.min(now + LEAF_LIFETIME_MS, caCert.notAfter.getTime())),
    signingAlgorithm: ECDSA_P256,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(usages, false),
      new x509.SubjectAlternativeNameExtension([...spec.sans], false),
      await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeAtomically(join(dir, `${name}.key`), await privateKeyPem(keys.privateKey), 0o600);
  writeAtomically(join(dir, `${name}.crt`), cert.toString('pem'), 0o644);
  writeAtomically(join(dir, `${name}.json`), `${JSON.stringify(spec)}\n`, 0o644);
}

function sameSpec(file: string, spec: LeafSpec): boolean {
  try {
    return readFileSync(file, 'utf8') === `${JSON.stringify(spec)}\n`;
  } catch {
    return false;
  }
}

/**
 * A certificate authority in `dir` and a certificate for each identity,
 * kept across runs: ECDSA P-256 keys, a CA that lives a year and leaf
 * certificates that live a week. Each leaf names its identity as the URI SAN
 * `spiffe://sotto/<name>`; a server's also names localhost, 127.0.0.1, ::1,
 * its own name and `hosts`. A certificate is made again when it is missing,
 * expires soon, was issued by another CA, or should now name other hosts.
 * Needs no network and no openssl: the certificates are made in-process.
 */
export async function prepareLocalPki(options: {
  readonly dir: string;
  /** Identities that serve and call: the services. */
  readonly servers: readonly string[];
  /** Identities that only call: the operator. */
  readonly clients: readonly string[];
  /** More names every server certificate carries, e.g. the host the gateway is reached at. */
  readonly hosts?: readonly string[];
  readonly logger?: Logger;
}): Promise<LocalPki> {
  const dir = resolve(options.dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const logger = options.logger ?? silentLogger;
  let renewedCa = false;
  if (!stillGood(join(dir, 'ca.crt'), CA_RENEW_BEFORE_MS) || !existsSync(join(dir, 'ca.key'))) {
    logger.info(`tls: making a local CA in ${dir}`);
    await createCa(dir);
    renewedCa = true;
  }
  const ca = new NodeX509(readFileSync(join(dir, 'ca.crt')));
  const identities: Record<string, TlsIdentityFiles> = {};
  const wanted = [
    ...options.servers.map((name) => ({ name, server: true })),
    ...options.clients.map((name) => ({ name, server: false })),
  ];
  for (const { name, server } of wanted) {
    if (!/^[a-z][a-z0-9-]*$/.test(name)) throw new Error(`tls: "${name}" is not an identity name`);
    const spec: LeafSpec = { server, sans: sansOf(name, server, options.hosts ?? []) };
    const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
    const current =
      !renewedCa &&
      existsSync(files.key) &&
      stillGood(files.cert, LEAF_RENEW_BEFORE_MS, ca) &&
      sameSpec(join(dir, `${name}.json`), spec);
    if (!current) await issueLeaf(dir, name, spec);
    identities[name] = files;
  }
  return { ca: join(dir, 'ca.crt'), identities };
}
