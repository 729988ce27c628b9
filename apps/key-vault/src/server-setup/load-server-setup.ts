import * as opaque from '@serenity-kit/opaque';
import { HsmConfigError, UnsealError, type Pkcs11Token } from '../sealing/pkcs11-token';
import { Sealer } from '../sealing/sealer';
import type { ServerSetupStore } from './server-setup.store';

export const SERVER_SETUP_CONTEXT = 'sotto.vault.v1/opaque-server-setup';

const KEY_LOOKS = 5;
const KEY_LOOK_WAIT_MS = 200;

/**
 * The deployment's OPAQUE server setup, unsealed by the HSM, and the sealer
 * for everything else the vault stores. The first replica to start generates
 * the setup and seals it; replicas racing it converge on whichever row
 * PostgreSQL kept, and on the HSM key that row names.
 */
export async function loadServerSetup(
  token: Pkcs11Token,
  store: ServerSetupStore,
  keyLabel: string,
): Promise<{ setup: string; sealer: Sealer }> {
  await opaque.ready;
  let stored = await store.read();
  if (!stored) {
    const key = token.findKeys(keyLabel)[0] ?? token.generateKey(keyLabel);
    const fresh = Buffer.from(opaque.server.createSetup(), 'base64url');
    await store.insertIfAbsent({
      sealedSetup: new Sealer(token, key).seal(fresh, SERVER_SETUP_CONTEXT),
      keyLabel,
      keyId: key.id,
    });
    stored = await store.read();
    if (!stored) throw new Error('opaque_server_setup: no row after inserting one');
  }
  if (stored.keyLabel !== keyLabel) {
    throw new HsmConfigError(
      `PKCS11_KEY_LABEL: the server setup is sealed by key "${stored.keyLabel}", not "${keyLabel}"`,
    );
  }
  const key = { label: stored.keyLabel, id: stored.keyId };
  // A replica racing this one may have made the key the row names after this process listed the
  // token's objects: look again, on the token read afresh, before calling it missing.
  for (
    let look = 1;
    look < KEY_LOOKS && !token.findKeys(key.label).some(({ id }) => id.equals(key.id));
    look++
  ) {
    await new Promise((resolve) => setTimeout(resolve, KEY_LOOK_WAIT_MS));
    token.reload();
  }
  if (!token.isLockedDown(key)) {
    throw new HsmConfigError(
      `PKCS11_KEY_LABEL: key "${keyLabel}" can leave the HSM (extractable or not sensitive); the vault refuses it`,
    );
  }
  const sealer = new Sealer(token, key);
  try {
    return { setup: sealer.unseal(stored.sealedSetup, SERVER_SETUP_CONTEXT).toString('base64url'), sealer };
  } catch (error) {
    if (error instanceof UnsealError) {
      throw new HsmConfigError(`PKCS11_KEY_LABEL: the stored OPAQUE server setup ${error.message}`);
    }
    throw error;
  }
}
