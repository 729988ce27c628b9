import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Kafka, logLevel, type Admin, type KafkaConfig, type LogEntry } from 'kafkajs';
import { Readiness } from '@sotto/platform/health';
import { clientTlsOptions, type ClientTlsFiles } from '@sotto/platform/tls';
import { repairRequestQueue } from './request-queue';

export const KAFKA = Symbol('KAFKA');
const KAFKA_ADMIN = Symbol('KAFKA_ADMIN');

/** Brokers, and whether (and how) to reach them over TLS. */
export interface KafkaConnection {
  readonly brokers: readonly string[];
  /** Set for TLS (security.protocol SSL); an unset CA means the system's roots. */
  readonly tls?: ClientTlsFiles;
}

export interface KafkaOptions extends KafkaConnection {
  readonly clientId: string;
}

/**
 * kafkajs settings for a connection: over TLS each broker's certificate must
 * chain to the CA and name the host dialled (the bootstrap address, then each
 * broker's advertised one), and the client presents its certificate if it has
 * one.
 */
export function kafkaClientConfig(connection: KafkaConnection): Pick<KafkaConfig, 'brokers' | 'ssl'> {
  return {
    brokers: [...connection.brokers],
    ...(connection.tls === undefined ? {} : { ssl: clientTlsOptions(connection.tls) }),
  };
}

function logCreator(): (entry: LogEntry) => void {
  const logger = new Logger('Kafka');
  return ({ level, log }) => {
    const { message, ...extra } = log;
    const line = `${message} ${JSON.stringify(extra)}`;
    if (level === logLevel.ERROR) logger.error(line);
    else if (level === logLevel.WARN) logger.warn(line);
  };
}

class KafkaLifecycle implements OnApplicationShutdown {
  constructor(@Inject(KAFKA_ADMIN) private readonly admin: Admin) {}

  async onApplicationShutdown(): Promise<void> {
    await this.admin.disconnect();
  }
}

@Module({})
export class KafkaModule {
  static forRoot(options: KafkaOptions): DynamicModule {
    return {
      module: KafkaModule,
      global: true,
      providers: [
        {
          provide: KAFKA,
          useFactory: (): Kafka => {
            repairRequestQueue();
            return new Kafka({
              clientId: options.clientId,
              ...kafkaClientConfig(options),
              logLevel: logLevel.WARN,
              logCreator,
              // Rides out a broker's loss: its partitions get new leaders once the controller fences
              // it (a broker session timeout, 9 s by default), and until then every retry fails.
              retry: { initialRetryTime: 300, retries: 8, maxRetryTime: 5000 },
            });
          },
        },
        {
          provide: KAFKA_ADMIN,
          inject: [KAFKA, Readiness],
          useFactory: async (kafka: Kafka, readiness: Readiness): Promise<Admin> => {
            const admin = kafka.admin();
            await admin.connect();
            readiness.register('kafka', async () => {
              const cluster = await admin.describeCluster();
              if (cluster.brokers.length === 0) throw new Error('no brokers in the cluster');
            });
            return admin;
          },
        },
        KafkaLifecycle,
      ],
      exports: [KAFKA, KAFKA_ADMIN],
    };
  }

  /** The module's shared admin client, for topic management at start-up. */
  static readonly ADMIN = KAFKA_ADMIN;
}
