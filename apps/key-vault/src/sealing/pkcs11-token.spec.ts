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
