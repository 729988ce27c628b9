import * as opaque from '@serenity-kit/opaque';
import { BackupError } from './backup-error';
import { generateRecoveryKey } from './recovery-key';
import { openSealedRecoveryKey, sealRecoveryKey } from './vault-seal';

/*
 * A real OPAQUE run in process: @serenity-kit/opaque's client against its
 * server, as the key-vault will run it, to get the export keys the client
 * seals the recovery key under.
 */
function register(
  setup: string,
  userIdentifier: string,
  password: string,
): { record: string; exportKey: string } {
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  const { registrationResponse } = opaque.server.createRegistrationResponse({
    serverSetup: setup,
    userIdentifier,
    registrationRequest,
  });
  const { registrationRecord, exportKey } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse,
    password,
  });
  return { record: registrationRecord, exportKey };
}

function login(setup: string, userIdentifier: string, record: string, password: string): string | undefined {
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password });
  const { serverLoginState, loginResponse } = opaque.server.startLogin({
    serverSetup: setup,
    userIdentifier,
    registrationRecord: record,
    startLoginRequest,
  });
  const finished = opaque.client.finishLogin({ clientLoginState, loginResponse, password });
  if (!finished) return undefined;
  opaque.server.finishLogin({ serverLoginState, finishLoginRequest: finished.finishLoginRequest });
  return finished.exportKey;
}

function refusal(sealed: Uint8Array, exportKey: string): BackupError {
  try {
    openSealedRecoveryKey(sealed, exportKey);
  } catch (error) {
    if (error instanceof BackupError) return error;
    throw error;
  }
  throw new Error('the sealed key opened');
}

describe('recovery key sealed under the OPAQUE export key', () => {
  let server: string;
  const account = '6f1c2b9e-4d3a-4f8b-9c7e-2a5d8e1f0b3c';

  beforeAll(async () => {
    await opaque.ready;
    server = opaque.server.createSetup();
  });

  it('opens after a login with the password it was registered with', () => {
    const key = generateRecoveryKey();
    const { record, exportKey } = register(server, account, 'correct horse battery staple');
    const sealed = sealRecoveryKey(key, exportKey);
    expect(sealed).toHaveLength(1 + 12 + 64 + 16);
    expect(Buffer.from(sealed).toString('latin1')).not.toContain(key.slice(0, 8));

    const loginKey = login(server, account, record, 'correct horse battery staple');
    expect(loginKey).toBe(exportKey);
    expect(openSealedRecoveryKey(sealed, loginKey!)).toBe(key);
  });

  it('seals differently every time (fresh nonce), opening to the same key', () => {
    const key = generateRecoveryKey();
    const { exportKey } = register(server, account, 'pw');
    const first = sealRecoveryKey(key, exportKey);
    const second = sealRecoveryKey(key, exportKey);
    expect(Buffer.from(first).equals(Buffer.from(second))).toBe(false);
    expect(openSealedRecoveryKey(second, exportKey)).toBe(key);
  });

  it('does not open with the export key of another password, nor of another vault', () => {
    const key = generateRecoveryKey();
    const { record, exportKey } = register(server, account, 'the right one');
    const sealed = sealRecoveryKey(key, exportKey);

    // A wrong password fails OPAQUE itself: no export key at all.
    expect(login(server, account, record, 'the wrong one')).toBeUndefined();
    // Re-registered with another password, or another vault server: another export key.
    const otherPassword = register(server, account, 'the wrong one').exportKey;
    const otherServer = register(opaque.server.createSetup(), account, 'the right one').exportKey;
    for (const wrong of [otherPassword, otherServer]) {
      const error = refusal(sealed, wrong);
      expect(error.code).toBe('SEALED_KEY_INVALID');
      expect(error.message).toMatch(/does not open with this password; use the recovery key/);
    }
  });

  it('refuses a sealed key that was altered anywhere, cut short, or of an unknown format', () => {
    const { exportKey } = register(server, account, 'pw');
    const sealed = sealRecoveryKey(generateRecoveryKey(), exportKey);
    for (const position of [1, 12, 13, 50, sealed.length - 17, sealed.length - 1]) {
      const altered = Uint8Array.from(sealed);
      altered[position] ^= 0x01;
      expect(refusal(altered, exportKey).code).toBe('SEALED_KEY_INVALID');
    }
    expect(refusal(sealed.subarray(0, sealed.length - 1), exportKey).code).toBe('SEALED_KEY_INVALID');
    expect(refusal(sealed.subarray(0, 10), exportKey).code).toBe('SEALED_KEY_INVALID');
    const future = Uint8Array.from(sealed);
    future[0] = 2;
    const error = refusal(future, exportKey);
    expect(error.code).toBe('UNSUPPORTED_VERSION');
    expect(error.message).toMatch(/format 2/);
  });
});
