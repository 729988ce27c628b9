import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { prepareSoftHsm, SOFTHSM_TOKEN_LABEL } from './softhsm';
import { tempDir } from './test-support';

/** Serial numbers of the tokens with this label, as softhsm2-util lists them under a configuration. */
function serials(softHsmConf: string, label: string): string[] {
  const slots = execFileSync('softhsm2-util', ['--show-slots'], {
    env: { ...process.env, SOFTHSM2_CONF: softHsmConf },
    encoding: 'utf8',
  });
  return [...slots.matchAll(/Serial number:\s*(\S+)\s*\n\s*Initialized:\s*yes[\s\S]*?Label:\s*(\S+)/g)]
    .filter((match) => match[2] === label)
    .map((match) => match[1] ?? '');
}

/** Logs in to the token through its PKCS#11 library, in a process of its own (SoftHSM2 reads SOFTHSM2_CONF once). */
function login(token: { modulePath: string; softHsmConf: string; tokenLabel: string; pin: string }): string {
  const script = `
    const { PKCS11, CKF_SERIAL_SESSION, CKF_RW_SESSION, CKU_USER } = require('pkcs11js');
    const p = new PKCS11();
    p.load(process.env.MODULE);
    p.C_Initialize();
    const slot = p.C_GetSlotList(true).find((s) => p.C_GetTokenInfo(s).label.trim() === process.env.LABEL);
    const session = p.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION);
    p.C_Login(session, CKU_USER, process.env.PIN);
    p.C_Finalize();
    process.stdout.write('logged in');`;
  return execFileSync(process.execPath, ['-e', script], {
    env: {
      ...process.env,
      SOFTHSM2_CONF: token.softHsmConf,
      MODULE: token.modulePath,
      LABEL: token.tokenLabel,
      PIN: token.pin,
    },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

describe('prepareSoftHsm', () => {
  const tmp = tempDir('softhsm');
  afterAll(() => tmp.cleanup());

  it('initialises one token with its own configuration, and keeps it and its PIN across restarts', async () => {
    const first = await prepareSoftHsm({ dataDir: tmp.dir });
    expect(existsSync(first.modulePath)).toBe(true);
    expect(first.tokenLabel).toBe(SOFTHSM_TOKEN_LABEL);
    expect(first.softHsmConf).toBe(join(tmp.dir, 'softhsm2.conf'));
    expect(readFileSync(first.softHsmConf, 'utf8')).toContain(
      `directories.tokendir = ${join(tmp.dir, 'tokens')}`,
    );
    expect(first.pin).toMatch(/^[0-9a-f]{24}$/);
    const [serial, ...more] = serials(first.softHsmConf, SOFTHSM_TOKEN_LABEL);
    expect(more).toEqual([]);
    expect(login(first)).toBe('logged in');

    const again = await prepareSoftHsm({ dataDir: tmp.dir });
    expect(again).toEqual(first);
    expect(serials(again.softHsmConf, SOFTHSM_TOKEN_LABEL)).toEqual([serial]);
    expect(login(again)).toBe('logged in');
  });

  it('gives another data dir another token and another PIN', async () => {
    const other = tempDir('softhsm-other');
    try {
      const [a, b] = await Promise.all([
        prepareSoftHsm({ dataDir: tmp.dir }),
        prepareSoftHsm({ dataDir: other.dir }),
      ]);
      expect(b.pin).not.toBe(a.pin);
      expect(serials(b.softHsmConf, SOFTHSM_TOKEN_LABEL)).not.toEqual(
        serials(a.softHsmConf, SOFTHSM_TOKEN_LABEL),
      );
      expect(() => login({ ...b, pin: a.pin })).toThrow('CKR_PIN_INCORRECT');
    } finally {
      other.cleanup();
    }
  });
});
