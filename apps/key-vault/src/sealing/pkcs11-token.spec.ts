import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { testInfra } from '@sotto/testing';
import { HsmConfigError, Pkcs11Token } from './pkcs11-token';

describe('Pkcs11Token.open on SoftHSM2', () => {
  const hsm = testInfra().hsm;

  it('finds a token that appears while it looks: the library is initialised afresh each time', async () => {
    const label = `late-${randomBytes(4).toString('hex')}`;
    // Initialised 300 ms from now by another process, as a vault starting beside softhsm2-util sees it.
    const init = spawn(
      'sh',
      [
        '-c',
        `sleep 0.3; exec softhsm2-util --init-token --free --label ${label} --pin ${hsm.pin} --so-pin ${randomBytes(12).toString('hex')}`,
      ],
      { env: { ...process.env, SOFTHSM2_CONF: hsm.softHsmConf }, stdio: 'ignore' },
    );
    const exited = once(init, 'exit');
    const token = Pkcs11Token.open({ ...hsm, tokenLabel: label }, 25, 200);
    try {
      expect(token.generateKey('found-late')).toBeDefined();
    } finally {
      token.close();
    }
    expect((await exited)[0]).toBe(0);
  });

  it('refuses a label no token has after the last look, naming the tokens there', () => {
    const started = Date.now();
    let refusal: unknown;
    try {
      Pkcs11Token.open({ ...hsm, tokenLabel: 'no-such-token' }, 3, 50);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(HsmConfigError);
    expect((refusal as Error).message).toMatch(
      new RegExp(`^PKCS11_TOKEN_LABEL: no token labelled "no-such-token" \\(tokens: .*"${hsm.tokenLabel}"`),
    );
    // Three looks, two waits between them.
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
  });
});

describe('Pkcs11Token.reload', () => {
  const hsm = testInfra().hsm;

  it('finds a key another process made after this one listed the token', async () => {
    const token = Pkcs11Token.open(hsm);
    try {
      const label = `other-${randomBytes(4).toString('hex')}`;
      expect(token.findKeys(label)).toEqual([]);
      // Another vault process makes the key, as a replica racing this one does.
      const child = spawn(
        process.execPath,
        [
          '-e',
          `
const pkcs11js = require('pkcs11js');
const m = new pkcs11js.PKCS11();
m.load(process.argv[1]);
m.C_Initialize();
const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === process.argv[2]);
const session = m.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
m.C_Login(session, pkcs11js.CKU_USER, process.argv[3]);
m.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
  { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
  { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
  { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
  { type: pkcs11js.CKA_TOKEN, value: true },
  { type: pkcs11js.CKA_LABEL, value: process.argv[4] },
  { type: pkcs11js.CKA_ID, value: Buffer.from(process.argv[5], 'hex') },
]);
m.C_Finalize();
`,
          hsm.modulePath,
          hsm.tokenLabel,
          hsm.pin,
          label,
          'a1b2c3d4',
        ],
        { env: { ...process.env, SOFTHSM2_CONF: hsm.softHsmConf }, stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      expect([(await once(child, 'exit'))[0], stderr]).toEqual([0, '']);
      token.reload();
      expect(token.findKeys(label)).toEqual([{ label, id: Buffer.from('a1b2c3d4', 'hex') }]);
    } finally {
      token.close();
    }
  });
});
