import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot, runServiceToExit, startTestService, testInfra } from '@sotto/testing';

describeServiceBoot('key-vault', CONTRACTS['key-vault'], { variable: 'DATABASE_URL', value: 'postgres' });

describe('key-vault start-up with a bad HSM setting', () => {
  /** Everything the vault needs, right, so that only the variable under test is wrong. */
  function goodEnv(): Record<string, string> {
    const { databaseUrl, redisUrl, hsm } = testInfra();
    return {
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      PKCS11_MODULE: hsm.modulePath,
      PKCS11_TOKEN_LABEL: hsm.tokenLabel,
      PKCS11_PIN: hsm.pin,
      ...(hsm.softHsmConf ? { SOFTHSM2_CONF: hsm.softHsmConf } : {}),
    };
  }

  it.each([
    [
      'PKCS11_MODULE',
      '/nonexistent/libpkcs11.so',
      'expected the absolute path of a PKCS#11 library (.so) that exists',
    ],
    ['PKCS11_MODULE', 'libsofthsm2.so', 'expected the absolute path of a PKCS#11 library (.so) that exists'],
    ['PKCS11_TOKEN_LABEL', 'x'.repeat(33), 'expected a label of 1 to 32 bytes without surrounding blanks'],
    ['PKCS11_PIN', '12', 'expected a PIN of at least 4 characters'],
    ['PKCS11_KEY_LABEL', ' padded', 'expected a label of 1 to 32 bytes without surrounding blanks'],
    [
      'KEY_VAULT_TRY_DELAYS',
      '3600,14400',
      'expected 7 comma-separated numbers of seconds (0 to 31536000) for tries 4 to 10, such as 3600,14400,43200,86400,86400,86400,86400',
    ],
  ])('exits 78 naming %s when it is %p', async (variable, value, message) => {
    const { code, stderr } = await runServiceToExit('key-vault', { ...goodEnv(), [variable]: value });
    expect(code).toBe(78);
    expect(stderr).toContain('key-vault: invalid environment:');
    expect(stderr.split('\n').filter((line) => line.startsWith('  '))).toEqual([`  ${variable}: ${message}`]);
  });

  it('exits 78 naming PKCS11_MODULE, PKCS11_TOKEN_LABEL and PKCS11_PIN when they are missing', async () => {
    const { PKCS11_MODULE: _module, PKCS11_TOKEN_LABEL: _token, PKCS11_PIN: _pin, ...rest } = goodEnv();
    const { code, stderr } = await runServiceToExit('key-vault', rest);
    expect(code).toBe(78);
    expect(stderr).toContain('  PKCS11_MODULE: is required');
    expect(stderr).toContain('  PKCS11_TOKEN_LABEL: is required');
    expect(stderr).toContain('  PKCS11_PIN: is required');
  });

  it.each([
    ['PKCS11_PIN', 'not-the-pin', 'PKCS11_PIN: token "sotto-vault" refused it: CKR_PIN_INCORRECT'],
    ['PKCS11_TOKEN_LABEL', 'no-such-token', 'PKCS11_TOKEN_LABEL: no token labelled "no-such-token"'],
    ['PKCS11_MODULE', '/bin/sh', 'PKCS11_MODULE: cannot load /bin/sh'],
  ])('does not start when the HSM refuses %s, and says so', async (variable, value, message) => {
    const started = startTestService('key-vault', { [variable]: value }).then(async (service) => {
      await service.stop('SIGKILL');
      return service;
    });
    await expect(started).rejects.toThrow(/^key-vault did not become ready: .*exited with 1/);
    // The reason is in the service's JSON log, which the error quotes.
    await expect(started).rejects.toThrow(JSON.stringify(message).slice(1, -1));
  });
});
