import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayCredentials, gatewayTrust, senderCertificateTrustRoot } from './gateway-trust';

describe('which CA a client verifies the gateway with', () => {
  const checkout = mkdtempSync(join(tmpdir(), 'sotto-trust-'));
  const nested = join(checkout, 'apps', 'cli');
  const stackFile = join(checkout, '.sotto', 'stack.json');
  const writeStack = (stack: object): void => writeFileSync(stackFile, JSON.stringify(stack));

  beforeAll(() => {
    mkdirSync(nested, { recursive: true });
    mkdirSync(join(checkout, '.sotto'));
  });

  afterAll(() => rmSync(checkout, { recursive: true, force: true }));

  it('takes the file given over SOTTO_CA, and SOTTO_CA over everything else', () => {
    writeStack({ gateway: '127.0.0.1:7400', tls: { ca: '/stack/ca.crt' } });
    const env = { SOTTO_CA: '/env/ca.crt' };
    expect(gatewayTrust('127.0.0.1:7400', { ca: '/flag/ca.crt', env, cwd: nested })).toEqual({
      source: 'ca-file',
      ca: '/flag/ca.crt',
    });
    expect(gatewayTrust('127.0.0.1:7400', { env, cwd: nested })).toEqual({
      source: 'ca-file',
      ca: '/env/ca.crt',
    });
  });

  it("adds the CA of the checkout's stack.json to the system roots when it names this gateway", () => {
    writeStack({ gateway: '127.0.0.1:7400', tls: { ca: '/stack/ca.crt' } });
    expect(gatewayTrust('127.0.0.1:7400', { env: {}, cwd: nested })).toEqual({
      source: 'system+stack',
      ca: '/stack/ca.crt',
      stackFile,
    });
  });

  it('uses only the system roots for another gateway, or outside a checkout', () => {
    writeStack({ gateway: '127.0.0.1:7400', tls: { ca: '/stack/ca.crt' } });
    expect(gatewayTrust('chat.example.org:443', { env: {}, cwd: nested })).toEqual({ source: 'system' });
    expect(gatewayTrust('127.0.0.1:7400', { env: {}, cwd: tmpdir() }).source).toBe('system');
  });

  it('finds the stack.json of SOTTO_STATE_DIR', () => {
    const stateDir = join(checkout, 'elsewhere');
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(
      join(stateDir, 'stack.json'),
      JSON.stringify({ gateway: '127.0.0.1:7999', tls: { ca: '/s/ca.crt' } }),
    );
    expect(
      gatewayTrust('127.0.0.1:7999', { env: { SOTTO_STATE_DIR: stateDir }, cwd: tmpdir() }),
    ).toMatchObject({
      source: 'system+stack',
      ca: '/s/ca.crt',
    });
  });

  it('ignores a stack.json it cannot read as one', () => {
    writeFileSync(stackFile, 'not json');
    expect(gatewayTrust('127.0.0.1:7400', { env: {}, cwd: nested })).toEqual({ source: 'system' });
  });

  it('says in one line when the CA file cannot be read', () => {
    expect(() =>
      gatewayCredentials('127.0.0.1:7400', { ca: join(checkout, 'missing.crt'), env: {} }),
    ).toThrow(`cannot read the CA certificate ${join(checkout, 'missing.crt')}: ENOENT`);
  });
});

describe('which sealed-sender trust root a client pins', () => {
  const checkout = mkdtempSync(join(tmpdir(), 'sotto-trust-root-'));
  const nested = join(checkout, 'apps', 'cli');

  beforeAll(() => {
    mkdirSync(nested, { recursive: true });
    mkdirSync(join(checkout, '.sotto'));
    writeFileSync(
      join(checkout, '.sotto', 'stack.json'),
      JSON.stringify({ gateway: '127.0.0.1:7400', senderCertificateTrustRoot: 'c3RhY2s=' }),
    );
  });

  afterAll(() => rmSync(checkout, { recursive: true, force: true }));

  it("takes the one given, else SOTTO_SENDER_CERTIFICATE_TRUST_ROOT, else the checkout's stack.json for this gateway", () => {
    const env = { SOTTO_SENDER_CERTIFICATE_TRUST_ROOT: 'ZW52' };
    expect(senderCertificateTrustRoot('127.0.0.1:7400', { trustRoot: 'b3B0aW9u', env, cwd: nested })).toBe(
      'b3B0aW9u',
    );
    expect(senderCertificateTrustRoot('127.0.0.1:7400', { env, cwd: nested })).toBe('ZW52');
    expect(senderCertificateTrustRoot('127.0.0.1:7400', { env: {}, cwd: nested })).toBe('c3RhY2s=');
  });

  it('pins none for another gateway, or outside a checkout', () => {
    expect(senderCertificateTrustRoot('chat.example.org:443', { env: {}, cwd: nested })).toBeUndefined();
    expect(senderCertificateTrustRoot('127.0.0.1:7400', { env: {}, cwd: tmpdir() })).toBeUndefined();
  });
});
