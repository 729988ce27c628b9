import { Module, type DynamicModule } from '@nestjs/common';
import { PresenceController } from './presence.controller';
import { PresenceService } from './presence.service';
import { PRESENCE_TTL_MS, StreamRegistry } from './stream-registry';

@Module({})
export class StreamsModule {
  static register(ttlMs: number): DynamicModule {
    return {
      module: StreamsModule,
      controllers: [PresenceController],
      providers: [{ provide: PRESENCE_TTL_MS, useValue: ttlMs }, StreamRegistry, PresenceService],
    };
  }
}
