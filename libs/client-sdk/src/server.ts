import { checkHealth } from '@sotto/contracts';
import { gatewayCredentials } from './gateway-trust';

/** Where a client looks for the gateway when told nothing else. */
export const DEFAULT_SERVER = '127.0.0.1:7400';

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** Checks a `host:port` typed by a person; the error says what was expected. */
export function parseServerAddress(input: string): string {
  const match = HOST_PORT.exec(input.trim());
  if (!match || Number(match[2]) < 1 || Number(match[2]) > 65535) {
    throw new Error(`server address "${input}" is not host:port (for example ${DEFAULT_SERVER})`);
  }
  return input.trim();
}

export interface ServerStatus {
  readonly server: string;
  readonly serving: boolean;
  /** SERVING, NOT_SERVING, or why the server could not be asked. */
  readonly detail: string;
}

/** Asks the gateway's grpc.health.v1 whether it is serving, over TLS verified with `ca` (see gatewayCredentials). */
export async function serverStatus(
  server: string,
  options: { ca?: string; timeoutMs?: number } = {},
): Promise<ServerStatus> {
  const address = parseServerAddress(server);
  const detail = await checkHealth(
    address,
    gatewayCredentials(address, { ca: options.ca }),
    '',
    options.timeoutMs ?? 3_000,
  );
  return { server, serving: detail === 'SERVING', detail };
}
