import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '@sotto/local-infra';
import { makeSenderCertificateKeys, type SenderCertificateKeys } from './sender-certificate-keys';
import { startServiceProcess, type ServiceProcess } from './service-process';
import {
  operatorTls,
  SERVICE_NAMES,
  serviceEnv,
  type InfraEndpoints,
  type ServiceAddresses,
  type ServiceName,
} from './services';

export interface PlatformOptions {
  readonly infra: InfraEndpoints;
  /** The public address; every internal service gets a free loopback port. */
  readonly gatewayAddr?: string;
  readonly logDir: string;
  readonly backupBlobDir: string;
  /** Variables added to (or overriding) a service's environment. */
  readonly env?: Partial<Record<ServiceName, Readonly<Record<string, string>>>>;
  /** The gateway's sealed-sender keys; a new trust root and server certificate by default. */
  readonly senderCertificates?: SenderCertificateKeys;
}

export interface Platform {
  /** The running process of each service (a new one after `restart`). */
  readonly services: Readonly<Record<ServiceName, ServiceProcess>>;
  readonly gateway: string;
  /**
   * The sealed-sender trust root (a libsignal PublicKey, base64) the gateway's
   * server certificate chains to: what clients pin to check the sender
   * certificates it issues. It stays the same across `restart`.
   */
  readonly senderCertificateTrustRoot: string;
  /**
   * Starts a service again, on the same addresses with the same environment,
   * once its process has exited (say, killed by a fault run); resolves when it
   * is SERVING.
   */
  restart(name: ServiceName): Promise<ServiceProcess>;
  /** Stops the gateway first, so clients leave before the services behind it go. */
  stop(): Promise<void>;
}

async function loopbackAddress(): Promise<string> {
  return `127.0.0.1:${await freePort()}`;
}

/** Starts all six services and resolves when every one of them is SERVING. */
export async function startPlatform(options: PlatformOptions): Promise<Platform> {
  mkdirSync(options.logDir, { recursive: true });
  mkdirSync(options.backupBlobDir, { recursive: true });
  const addresses = {} as Record<ServiceName, ServiceAddresses>;
  for (const name of SERVICE_NAMES) {
    const grpc = name === 'gateway' && options.gatewayAddr ? options.gatewayAddr : await loopbackAddress();
    addresses[name] = { grpc, metrics: await loopbackAddress() };
  }

  const senderCertificates = options.senderCertificates ?? makeSenderCertificateKeys();
  const start = (name: ServiceName): Promise<ServiceProcess> =>
    startServiceProcess({
      name,
      env: {
        ...serviceEnv(name, addresses, options.infra, options.backupBlobDir, senderCertificates),
        ...options.env?.[name],
      },
      logFile: join(options.logDir, `${name}.log`),
      operator: operatorTls(options.infra.tls),
    });
  const started = await Promise.allSettled(SERVICE_NAMES.map(start));
  const running = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const failures = started.flatMap((result) =>
    result.status === 'rejected' ? [result.reason as Error] : [],
  );
  if (failures.length > 0) {
    await Promise.all(running.map((service) => service.stop()));
    throw new Error(failures.map((failure) => failure.message).join('\n\n'));
  }

  const services = Object.fromEntries(running.map((service) => [service.name, service])) as Record<
    ServiceName,
    ServiceProcess
  >;
  let stopped = false;
  return {
    services,
    gateway: addresses.gateway.grpc,
    senderCertificateTrustRoot: senderCertificates.trustRoot,
    restart: async (name) => {
      await services[name].exited;
      if (stopped) throw new Error(`${name}: the platform is stopping`);
      services[name] = await start(name);
      return services[name];
    },
    stop: async () => {
      stopped = true;
      await services.gateway.stop();
      await Promise.all(
        SERVICE_NAMES.filter((name) => name !== 'gateway').map((name) => services[name].stop()),
      );
    },
  };
}
