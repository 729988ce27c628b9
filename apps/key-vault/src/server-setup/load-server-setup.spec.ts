import { randomBytes } from 'node:crypto';
import * as opaque from '@serenity-kit/opaque';
import { Pool } from 'pg';
import {
  createTestDatabase,
  createTestHsmToken,
  operatorDatabaseUrl,
  startTestService,
  testInfra,
  type TestService,
} from '@sotto/testing';
import type { AccountId } from '@sotto/platform/ids';
import { recoveryKeyContext, recordContext } from '../records/seal-contexts';
import { Pkcs11Token, UnsealError } from '../sealing/pkcs11-token';
import { Sealer } from '../sealing/sealer';
import { VaultClient, newAccountId, newSource } from '../test-support/vault-client';
import { SERVER_SETUP_CONTEXT, loadServerSetup } from './load-server-setup';
import { ServerSetupStore } from './server-setup.store';

/** The OPAQUE public key of `bytes` read as a server setup, or undefined if OPAQUE refuses them. */
function publicKeyIfSetup(bytes: Buffer): string | undefined {
  try {
    return opaque.server.getPublicKey(bytes.toString('base64url'));
  } catch {
    return undefined;
  }
}

describe('the vault database at rest', () => {
  let service: TestService;
  let pool: Pool;
  let store: ServerSetupStore;

  beforeAll(async () => {
    const databaseUrl = await createTestDatabase();
    service = await startTestService('key-vault', { DATABASE_URL: databaseUrl });
    pool = new Pool({ connectionString: operatorDatabaseUrl(databaseUrl), options: '-c search_path=vault' });
    store = new ServerSetupStore(pool);
    await opaque.ready;
  });

  afterAll(async () => {
    await pool?.end();
    await service?.stop();
  });

  it('yields no OPAQUE server setup without the HSM, and not with another one either', async () => {
    const client = new VaultClient(service.grpc);
    const accountId = newAccountId();
    await client.register(accountId, 'hunter2');
    const login = await client.login(accountId, 'hunter2', newSource());
    client.close();
    const serverPublicKey = Buffer.from(login.serverPublicKey!, 'base64url');

    const stored = await store.read();
    expect(stored).toBeDefined();
    const sealedSetup = stored!.sealedSetup;
    // What an attacker with a dump has: neither the setup nor even its public half, in any form OPAQUE takes.
    expect(sealedSetup.includes(serverPublicKey)).toBe(false);
    expect(() => opaque.server.getPublicKey(sealedSetup.toString('base64url'))).toThrow(
      'deserialize serverSetup',
    );
    // Without the version byte and nonce, the ciphertext is random bytes of about a setup's length: OPAQUE
    // may well accept them as some setup, but never as this server's.
    expect(publicKeyIfSetup(sealedSetup.subarray(13))).not.toBe(login.serverPublicKey);

    // A token of their own, with the same PIN and a key of the same label: it opens nothing.
    const lookalikeLabel = `lookalike-${randomBytes(4).toString('hex')}`;
    const lookalike = Pkcs11Token.open(await createTestHsmToken(lookalikeLabel));
    try {
      const forged = new Sealer(lookalike, lookalike.generateKey(stored!.keyLabel));
      expect(() => forged.unseal(sealedSetup, SERVER_SETUP_CONTEXT)).toThrow(UnsealError);
      await expect(loadServerSetup(lookalike, store, stored!.keyLabel)).rejects.toThrow(
        `PKCS11_KEY_LABEL: token "${lookalikeLabel}" has no key "${stored!.keyLabel}" with id ${stored!.keyId.toString('hex')}`,
      );
    } finally {
      lookalike.close();
    }

    // The vault's own token opens it, to the very setup the server logged the client in with.
    const real = Pkcs11Token.open(testInfra().hsm);
    try {
      const { setup, sealer } = await loadServerSetup(real, store, stored!.keyLabel);
      expect(Buffer.from(opaque.server.getPublicKey(setup), 'base64url')).toEqual(serverPublicKey);

      // Per account too, the record and the client's sealed recovery key sit under the HSM key.
      const { rows } = await pool.query<{
        credential_identifier: Buffer;
        opaque_record: Buffer;
        sealed_recovery_key: Buffer;
      }>(
        'SELECT credential_identifier, opaque_record, sealed_recovery_key FROM vault_records WHERE account_id = $1',
        [accountId],
      );
      const [row] = rows;
      const id = accountId as AccountId;
      expect(Buffer.from(login.sealedRecoveryKey).equals(row.sealed_recovery_key)).toBe(false);
      expect(
        sealer.unseal(row.sealed_recovery_key, recoveryKeyContext(id, row.credential_identifier)),
      ).toEqual(Buffer.from(login.sealedRecoveryKey));
      expect(sealer.unseal(row.opaque_record, recordContext(id, row.credential_identifier))).toHaveLength(
        192,
      );
    } finally {
      real.close();
    }
  });
});
