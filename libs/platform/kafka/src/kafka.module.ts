import { Inject, Logger, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import { Kafka, logLevel, type Admin, type LogEntry } from 'kafkajs';
import { Readiness } from '@sotto/platform/health';

export const KAFKA = Symbol('KAFKA');
const KAFKA_ADMIN = Symbol('KAFKA_ADMIN');

export interface KafkaOptions {
  readonly brokers: readonly string[];
  readonly clientId: string;
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
          useFactory: (): Kafka =>
            new Kafka({
              clientId: options.clientId,
              brokers: [...options.brokers],
              logLevel: logLevel.WARN,
              logCreator,
            }),
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
