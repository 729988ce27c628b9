import { Module } from '@nestjs/common';
import { VersionsRepository } from './versions.repository';
import { VersionsService } from './versions.service';

@Module({ providers: [VersionsRepository, VersionsService], exports: [VersionsRepository, VersionsService] })
export class VersionsModule {}
