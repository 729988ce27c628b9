import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { CKF_SERIAL_SESSION, CKU_USER, PKCS11 } from 'pkcs11js';
import { createTestHsmToken, testInfra } from './index';

describe('test harness HSM', () => {
  it('gives tests a SoftHSM2 token, and lets them add others that log in with the same PIN', async () => {
    const { hsm } = testInfra();
    expect(existsSync(hsm.modulePath)).toBe(true);
    // Specs that load the library themselves find the harness's tokens through the real environment.
    expect(process.env['SOFTHSM2_CONF']).toBe(hsm.softHsmConf);

    const label = `harness-${randomBytes(4).toString('hex')}`;
    const added = await createTestHsmToken(label);
    expect(await createTestHsmToken(label)).toEqual(added);
    expect(added).toEqual({ ...hsm, tokenLabel: label });

    const pkcs11 = new PKCS11();
    pkcs11.load(hsm.modulePath);
    pkcs11.C_Initialize();
    try {
      const labels = pkcs11
        .C_GetSlotList(true)
        .map((slot) => ({ slot, label: pkcs11.C_GetTokenInfo(slot).label.trimEnd() }));
      expect(labels.filter((token) => token.label === label)).toHaveLength(1);
      expect(labels.map((token) => token.label)).toContain(hsm.tokenLabel);
      for (const tokenLabel of [hsm.tokenLabel, label]) {
        const slot = labels.find((token) => token.label === tokenLabel)!.slot;
        const session = pkcs11.C_OpenSession(slot, CKF_SERIAL_SESSION);
        pkcs11.C_Login(session, CKU_USER, hsm.pin);
        pkcs11.C_Logout(session);
        pkcs11.C_CloseSession(session);
      }
    } finally {
      pkcs11.C_Finalize();
    }
  });
});
