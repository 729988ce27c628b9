import { randomBytes } from 'node:crypto';
import { initSoftHsmToken } from '@sotto/local-infra';
import type { HsmEndpoint } from '@sotto/stack';
import { testInfra } from './infra';

/**
 * Another SoftHSM2 token beside the harness's, with the same PIN: a second
 * HSM for tests that show what a different one cannot do. Reached through the
 * harness's SOFTHSM2_CONF, under its own label.
 */
export async function createTestHsmToken(label: string): Promise<HsmEndpoint> {
  const { hsm } = testInfra();
  if (hsm.softHsmConf === undefined)
    throw new Error('the harness HSM is not SoftHSM2; cannot add a token to it');
  await initSoftHsmToken({
    softHsmConf: hsm.softHsmConf,
    label,
    pin: hsm.pin,
    soPin: randomBytes(12).toString('hex'),
  });
  return { ...hsm, tokenLabel: label };
}
