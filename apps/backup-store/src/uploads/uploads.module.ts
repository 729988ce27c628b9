import { Module } from '@nestjs/common';
import { VersionsModule } from '../versions/versions.module';
import { UploadStreams } from './upload-streams';
import { UploadsRepository } from './uploads.repository';
import { UploadsService } from './uploads.service';

@Module({
  imports: [VersionsModule],
  providers: [UploadsRepository, UploadStreams, UploadsService],
  exports: [UploadsService],
})
export class UploadsModule {}
