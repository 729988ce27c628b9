import type { z } from 'zod';
import { hostPort, url } from '@sotto/platform/config';
import { serviceEnvSchema } from '@sotto/platform/grpc';

export const gatewayEnv = serviceEnvSchema(
  // The public API listens where clients expect it by default.
  { grpc: '127.0.0.1:7400', metrics: '127.0.0.1:9400' },
  {
    REDIS_URL: url(['redis', 'rediss']),
    PREKEY_DIRECTORY_ADDR: hostPort().default('127.0.0.1:7401'),
    MESSAGE_RELAY_ADDR: hostPort().default('127.0.0.1:7402'),
    PRESENCE_ADDR: hostPort().default('127.0.0.1:7403'),
    BACKUP_STORE_ADDR: hostPort().default('127.0.0.1:7404'),
    KEY_VAULT_ADDR: hostPort().default('127.0.0.1:7405'),
  },
);
export type GatewayEnv = z.output<typeof gatewayEnv>;
