import { randomBytes } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { SottoError } from '../errors';
import { unary } from '../grpc';
import type { AccountFile, Profile } from '../profile';
import { authorizationMetadata } from './authorization';
import type { GatewayConnection } from './connection';

/**
 * The secret a rotation proposed, kept before the server is asked: if the
 * answer is lost the server may have taken it, and then it is the only
 * secret that works.
 */
const PENDING_SECRET_FILE = 'pending-device-secret';

// Failures after which the server may or may not have taken the new secret.
const UNDECIDED = new Set<number>([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.CANCELLED,
  status.UNKNOWN,
  status.INTERNAL,
]);

function codeOf(error: unknown): number | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'number' ? code : undefined;
}

/**
 * Gives this device a new secret: made here (32 random bytes), kept in the
 * profile, then sent; once the server has it, the old secret stops working on
 * every gateway within a second and account.json holds the new one. An
 * interrupted rotation (no answer, or a crash) is finished by the next: it
 * first checks whether the server took the secret it kept.
 */
export async function rotateDeviceSecret(
  profile: Profile,
  connection: GatewayConnection,
): Promise<AccountFile> {
  const account = profile.account();
  const adopt = (secret: string): AccountFile => {
    const rotated = { ...profile.account(), deviceSecret: secret };
    profile.writeJson('account.json', rotated);
    profile.remove(PENDING_SECRET_FILE);
    connection.useSecret(rotated);
    return rotated;
  };
  /** Whether the server accepts `secret` for this device; undefined if it cannot be told now. */
  const accepts = async (secret: string): Promise<boolean | undefined> => {
    const metadata = authorizationMetadata({ ...account, deviceSecret: secret });
    try {
      await unary(connection.keys.getPreKeyCount.bind(connection.keys), {}, { metadata });
      return true;
    } catch (error) {
      return codeOf(error) === status.UNAUTHENTICATED ? false : undefined;
    }
  };

  const earlier = profile.read(PENDING_SECRET_FILE)?.toString('utf8');
  if (earlier !== undefined) {
    const taken = await accepts(earlier);
    if (taken === undefined) {
      throw new SottoError(
        `server ${connection.server} could not be asked whether an earlier rotation took; try again`,
      );
    }
    if (taken) return adopt(earlier);
    profile.remove(PENDING_SECRET_FILE);
  }

  const next = randomBytes(32).toString('base64url');
  profile.write(PENDING_SECRET_FILE, next);
  try {
    await unary(
      connection.accounts.rotateDeviceSecret.bind(connection.accounts),
      { newDeviceSecret: next },
      { metadata: connection.auth },
    );
  } catch (error) {
    if (UNDECIDED.has(codeOf(error) ?? status.UNKNOWN)) {
      const taken = await accepts(next);
      if (taken === true) return adopt(next);
      if (taken === undefined) {
        throw new SottoError(
          `the rotation may not have reached server ${connection.server}; run it again to finish it (the new secret is kept until then)`,
        );
      }
    }
    profile.remove(PENDING_SECRET_FILE);
    throw connection.explain(error);
  }
  return adopt(next);
}
