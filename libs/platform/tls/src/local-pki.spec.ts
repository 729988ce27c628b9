import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareLocalPki } from './local-pki';

describe('prepareLocalPki', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sotto-pki-'));
  const identities = { servers: ['gateway', 'presence'], clients: ['operator'] };

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('issues ECDSA P-256 certificates from one CA, each naming its identity, servers also their hosts', async () => {
    const pki = await prepareLocalPki({ dir, ...identities, hosts: ['chat.local'] });
    const ca = new X509Certificate(readFileSync(pki.ca));
    expect(ca.ca).toBe(true);
    const gateway = new X509Certificate(readFileSync(pki.identities['gateway']?.cert ?? ''));
    expect(gateway.checkIssued(ca) && gateway.verify(ca.publicKey)).toBe(true);
    expect(gateway.publicKey.asymmetricKeyDetails).toEqual({ namedCurve: 'prime256v1' });
    expect(gateway.subjectAltName?.split(', ')).toEqual([
      'URI:spiffe://sotto/gateway',
      'DNS:localhost',
      'IP Address:127.0.0.1',
      'IP Address:0:0:0:0:0:0:0:1',
      'DNS:gateway',
      'DNS:chat.local',
    ]);
    // Short-lived: a week at most.
    expect(Date.parse(gateway.validTo) - Date.now()).toBeLessThanOrEqual(7 * 24 * 3600 * 1000);
    const operator = new X509Certificate(readFileSync(pki.identities['operator']?.cert ?? ''));
    expect(operator.subjectAltName).toBe('URI:spiffe://sotto/operator');
    expect(operator.checkIssued(ca)).toBe(true);
    expect(statSync(pki.identities['gateway']?.key ?? '').mode & 0o777).toBe(0o600);
  });

  it('keeps every certificate across runs', async () => {
    const files = ['ca.crt', 'gateway.crt', 'presence.crt', 'operator.crt'].map((file) => join(dir, file));
    const before = files.map((file) => readFileSync(file, 'utf8'));
    await prepareLocalPki({ dir, ...identities, hosts: ['chat.local'] });
    expect(files.map((file) => readFileSync(file, 'utf8'))).toEqual(before);
  });

  it('issues again the certificates whose names changed, from the same CA', async () => {
    const files = ['ca.crt', 'gateway.crt', 'presence.crt', 'operator.crt'].map((file) => join(dir, file));
    const before = files.map((file) => readFileSync(file, 'utf8'));
    await prepareLocalPki({ dir, ...identities, hosts: ['chat.example'] });
    const after = files.map((file) => readFileSync(file, 'utf8'));
    // The CA and the operator's certificate (no hosts) stay; the servers' are new.
    expect(after.map((pem, index) => pem === before[index])).toEqual([true, false, false, true]);
    const gateway = new X509Certificate(after[1] ?? '');
    expect(gateway.subjectAltName).toContain('DNS:chat.example');
    expect(gateway.subjectAltName).not.toContain('chat.local');
  });
});
