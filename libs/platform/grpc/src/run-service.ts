import 'reflect-metadata';
import { dirname } from 'node:path';
import { Global, Module, type DynamicModule } from '@nestjs/common';
import type { Server } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import { Registry } from 'prom-client';
import { z } from 'zod';
import {
  HEALTH_PROTO_PATH,
  PROTO_LOADER_OPTIONS,
  SERVICE_IDENTITIES,
  type ServiceContract,
  type ServiceIdentity,
} from '@sotto/contracts';
import {
  EnvironmentError,
  hostPort,
  logLevel,
  parseEnvironment,
  pemFile,
  positiveInt,
} from '@sotto/platform/config';
import { Readiness, ReadinessModule } from '@sotto/platform/health';
import { createLogger, NestPinoLogger, type Logger } from '@sotto/platform/logging';
import { createMetricsRegistry, startMetricsServer, type MetricsServer } from '@sotto/platform/metrics';
import { packageDefinitionOf } from './contract';
import { GrpcExceptionFilter } from './errors';
import { serveDirectMethods } from './direct';
import { GrpcMetricsInterceptor, GrpcServerMetrics } from './metrics.interceptor';
import { createGrpcMicroservice } from './microservice';
import { checkOwnCertificate, serverCredentials } from './tls';
import { useServiceIdentity } from './upstream';
import { withProtocDescriptors } from './reflection';
import { INTERNAL_SERVER_LIMITS, PUBLIC_SERVER_LIMITS, serverLimitOptions } from './server-limits';

/** Variables every service reads; each service's schema adds its own. */
export function commonServiceEnv(defaults: { grpc: string; metrics: string }) {
  return {
    GRPC_ADDR: hostPort().default(defaults.grpc as `${string}:${number}`),
    METRICS_ADDR: hostPort().default(defaults.metrics as `${string}:${number}`),
    LOG_LEVEL: logLevel().default('info'),
    /** How long in-flight calls and streams get to finish on SIGTERM. */
    SHUTDOWN_GRACE_MS: positiveInt().default(15_000),
    /** Set by a supervisor (npm start, the test harness): exit if it dies. */
    SOTTO_PARENT_PID: positiveInt().optional(),
    /**
     * This service's certificate (naming it as spiffe://sotto/<service>) and
     * key: served to its callers and presented to the services it calls.
     */
    GRPC_TLS_CERT: pemFile(),
    GRPC_TLS_KEY: pemFile(),
    /** The CA the platform's certificates are issued by: callers and called services must chain to it. */
    GRPC_TLS_CA: pemFile(),
    /** The public API's certificate and key, if not GRPC_TLS_CERT's (the gateway, under a public CA). */
    GRPC_PUBLIC_TLS_CERT: pemFile().optional(),
    GRPC_PUBLIC_TLS_KEY: pemFile().optional(),
  };
}

export type CommonServiceEnv = z.output<z.ZodObject<ReturnType<typeof commonServiceEnv>>>;

/** A service's environment schema: the common variables plus its own. */
export function serviceEnvSchema<Shape extends z.ZodRawShape>(
  defaults: { grpc: string; metrics: string },
  shape: Shape,
) {
  return z.object({ ...commonServiceEnv(defaults), ...shape });
}

export interface ServiceSpec<S extends z.ZodType<CommonServiceEnv>> {
  /** The app's name: `prekey-directory`, `gateway`, … */
  readonly name: string;
  readonly contract: ServiceContract;
  readonly env: S;
  readonly module: (env: z.output<S>) => DynamicModule;
  /**
   * The public API holds clients' long-lived streams, so its connections are
   * never aged out. Internal services age theirs out now and then, so callers
   * re-resolve DNS and spread over replicas added since (see internalChannelOptions).
   */
  readonly publicApi?: boolean;
}

/** How long an internal service keeps one caller's connection before asking it to reconnect. */
const INTERNAL_CONNECTION_AGE_MS = 5 * 60_000;
/** How long calls still open on an aged-out connection get to finish. */
const INTERNAL_CONNECTION_AGE_GRACE_MS = 30_000;

const HEALTH_POLL_MS = 5_000;

/**
 * Starts one Sotto service: validated environment, JSON logs, the gRPC
 * server with grpc.health.v1 and server reflection, Prometheus metrics and
 * readiness on an HTTP port, and an orderly stop on SIGTERM or SIGINT.
 * Never returns normally; exits non-zero if the service cannot start.
 */
export async function runService<S extends z.ZodType<CommonServiceEnv>>(spec: ServiceSpec<S>): Promise<void> {
  let env: z.output<S>;
  try {
    env = parseEnvironment(spec.env);
  } catch (error) {
    if (error instanceof EnvironmentError) {
      process.stderr.write(`${spec.name}: ${error.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw error;
  }

  const logger = createLogger(spec.name, env.LOG_LEVEL);
  process.on('uncaughtException', (error) => fail(logger, 'uncaught exception', error));
  process.on('unhandledRejection', (error) => fail(logger, 'unhandled promise rejection', error));

  try {
    await start(spec, env, logger);
  } catch (error) {
    fail(logger, 'failed to start', error);
  }
}

function fail(logger: Logger, message: string, error: unknown): never {
  logger.fatal({ err: error }, message);
  logger.flush();
  process.exit(1);
}

function identityOf(name: string): ServiceIdentity {
  const identity = SERVICE_IDENTITIES.find((service) => service === name);
  if (identity === undefined) throw new Error(`${name} is not one of ${SERVICE_IDENTITIES.join(', ')}`);
  return identity;
}

async function start<S extends z.ZodType<CommonServiceEnv>>(
  spec: ServiceSpec<S>,
  env: z.output<S>,
  logger: Logger,
): Promise<void> {
  const identity = identityOf(spec.name);
  const tls = { ca: env.GRPC_TLS_CA, cert: env.GRPC_TLS_CERT, key: env.GRPC_TLS_KEY };
  checkOwnCertificate(identity, tls);
  useServiceIdentity(tls);
  const credentials = serverCredentials(
    identity,
    { ...tls, publicCert: env.GRPC_PUBLIC_TLS_CERT, publicKey: env.GRPC_PUBLIC_TLS_KEY },
    {
      publicApi: spec.publicApi ?? false,
      onRefused: ({ caller, method }) =>
        logger.warn({ caller: caller ?? 'unknown', method }, 'call refused: the topology does not allow it'),
    },
  );
  const registry = createMetricsRegistry(spec.name);
  const serviceNames = ['', ...spec.contract.services];
  const health = new HealthImplementation(
    Object.fromEntries(serviceNames.map((name) => [name, 'NOT_SERVING'])),
  );
  let grpcServer: Server | undefined;

  // The service's own series go where /metrics serves them: inject prom-client's Registry.
  @Global()
  @Module({ providers: [{ provide: Registry, useValue: registry }], exports: [Registry] })
  class MetricsRegistryModule {}

  @Module({ imports: [ReadinessModule, MetricsRegistryModule, spec.module(env)] })
  class ServiceRootModule {}

  const callMetrics = new GrpcServerMetrics(registry);
  // The direct methods get their handlers before the server takes its first connection.
  const serveDirect = (server: Server): void =>
    serveDirectMethods(app, server, { metrics: callMetrics, logger });
  const app = await createGrpcMicroservice(
    ServiceRootModule,
    new NestPinoLogger(logger),
    {
      url: env.GRPC_ADDR,
      package: spec.contract.package,
      // Requests and responses go through the generated codecs, so handlers
      // get exactly the generated types.
      packageDefinition: packageDefinitionOf(spec.contract.definitions),
      gracefulShutdown: true,
      // TLS 1.3 only; internal services also require a client certificate and check the topology.
      credentials,
      channelOptions: spec.publicApi
        ? serverLimitOptions(PUBLIC_SERVER_LIMITS)
        : {
            ...serverLimitOptions(INTERNAL_SERVER_LIMITS),
            'grpc.max_connection_age_ms': INTERNAL_CONNECTION_AGE_MS,
            'grpc.max_connection_age_grace_ms': INTERNAL_CONNECTION_AGE_GRACE_MS,
          },
      onLoadPackageDefinition: (_definition: unknown, server: Server) => {
        grpcServer = server;
        new ReflectionService(reflectionDefinition(spec.contract)).addToServer(server);
        health.addToServer(server);
      },
    },
    serveDirect,
  );
  app.useGlobalFilters(new GrpcExceptionFilter(logger));
  app.useGlobalInterceptors(new GrpcMetricsInterceptor(callMetrics));
  await app.listen();
  if (grpcServer === undefined) throw new Error('the gRPC server was not created');

  const readiness = app.get(Readiness);
  const setHealth = (next: ServingStatus): void =>
    serviceNames.forEach((name) => health.setStatus(name, next));
  const refreshHealth = async (): Promise<void> => {
    const report = await readiness.report();
    setHealth(report.ready ? 'SERVING' : 'NOT_SERVING');
    if (!report.ready) logger.warn({ checks: report.checks }, 'not ready');
  };
  await refreshHealth();
  const poll = setInterval(() => void refreshHealth(), HEALTH_POLL_MS);

  const [metricsHost, metricsPort] = splitHostPort(env.METRICS_ADDR);
  const metrics: MetricsServer = await startMetricsServer({
    host: metricsHost,
    port: metricsPort,
    registry,
    readiness: () => readiness.report(),
  });
  logger.info({ grpc: env.GRPC_ADDR, metrics: metrics.address }, `${spec.name} listening`);

  let stopping = false;
  const stop = async (reason: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, `${spec.name} stopping`);
    clearInterval(poll);
    readiness.markShuttingDown();
    setHealth('NOT_SERVING');
    const deadline = setTimeout(() => {
      logger.error(
        { graceMs: env.SHUTDOWN_GRACE_MS },
        'calls still open at the end of the grace period; closing them',
      );
      grpcServer?.forceShutdown();
    }, env.SHUTDOWN_GRACE_MS);
    try {
      // Runs every module's shutdown hooks: consumers commit, pools close.
      await app.close();
      await metrics.close();
      logger.info(`${spec.name} stopped`);
      logger.flush();
      process.exit(0);
    } catch (error) {
      fail(logger, 'error while stopping', error);
    } finally {
      clearTimeout(deadline);
    }
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));

  const parentPid = env.SOTTO_PARENT_PID;
  if (parentPid !== undefined) {
    setInterval(() => {
      if (!isAlive(parentPid)) void stop(`supervisor ${parentPid} exited`);
    }, 1_000).unref();
  }
}

/** The service's .proto files with grpc.health.v1, for server reflection (grpcurl and friends). */
function reflectionDefinition(contract: ServiceContract) {
  return withProtocDescriptors(
    loadSync([...contract.protoFiles, HEALTH_PROTO_PATH], {
      ...PROTO_LOADER_OPTIONS,
      includeDirs: [...(PROTO_LOADER_OPTIONS.includeDirs ?? []), dirname(HEALTH_PROTO_PATH)],
    }),
  );
}

function splitHostPort(address: string): [string, number] {
  const index = address.lastIndexOf(':');
  return [address.slice(0, index).replace(/^\[|\]$/g, ''), Number(address.slice(index + 1))];
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
