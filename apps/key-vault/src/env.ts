import { existsSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { positiveInt, rateLimitsSwitch } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';
import { postgresEnv } from '@sotto/platform/postgres';
import { redisEnv } from '@sotto/platform/redis';
import { tryDelays } from './records/try-spacing';

/** The PKCS#11 library of the HSM: SoftHSM2 locally, the vendor's library in production. */
function modulePath() {
  return z.string().refine((path) => isAbsolute(path) && existsSync(path) && statSync(path).isFile(), {
    message: 'expected the absolute path of a PKCS#11 library (.so) that exists',
  });
}

/** PKCS#11 labels are at most 32 bytes of UTF-8, padded with blanks by the token. */
function label() {
  return z.string().refine((value) => value.trim() === value && Buffer.byteLength(value) <= 32, {
    message: 'expected a label of 1 to 32 bytes without surrounding blanks',
  });
}

export const vaultEnv = serviceEnvSchema(
  { grpc: '127.0.0.1:7405', metrics: '127.0.0.1:9405' },
  {
    PKCS11_MODULE: modulePath(),
    /** The token (slot) holding the vault's sealing key. */
    PKCS11_TOKEN_LABEL: label(),
    /** The token's user PIN. Never logged. */
    PKCS11_PIN: z.string().min(4, { message: 'expected a PIN of at least 4 characters' }),
    /** The AES key that seals the OPAQUE server setup; created, non-extractable, on first start. */
    PKCS11_KEY_LABEL: label().default('sotto-vault-seal'),
    /** How long a started login may be finished; it counts as a failed try until then. */
    VAULT_LOGIN_TTL_SECONDS: positiveInt().default(60),
    /** Logins one account may start per window, whoever starts them. */
    VAULT_LOGIN_LIMIT_PER_ACCOUNT: positiveInt().default(5),
    /** Logins one source address (IPv6: one /64) may start per window, for any account. */
    VAULT_LOGIN_LIMIT_PER_SOURCE: positiveInt().default(30),
    VAULT_LOGIN_LIMIT_WINDOW_SECONDS: positiveInt().default(3600),
    /**
     * Seconds to wait before each of tries 4 to 10 since the last success, after
     * the try before it: 1 h, 4 h, 12 h, then a day each. `0,0,0,0,0,0,0` removes the waits.
     */
    KEY_VAULT_TRY_DELAYS: tryDelays(),
    /** Times a day an account's device may clear its count of failed tries. */
    VAULT_RESET_LIMIT_PER_DAY: positiveInt().default(1),
    /**
     * "off" turns the login and reset limits off, for load tests only; the vault says so as it
     * starts. The 10-guess limit and the spaced tries are not rate limits and stay.
     */
    SOTTO_RATE_LIMITS: rateLimitsSwitch(),
  },
)
  .and(postgresEnv)
  // Login state and the rate limits of unauthenticated recovery live in Redis.
  .and(redisEnv);
export type VaultEnv = z.output<typeof vaultEnv>;
