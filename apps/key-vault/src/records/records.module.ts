import { Module } from '@nestjs/common';
import { VaultRecordsRepository } from './vault-records.repository';
import { VaultStatusService } from './vault-status.service';

@Module({
  providers: [VaultRecordsRepository, VaultStatusService],
  exports: [VaultRecordsRepository, VaultStatusService],
})
export class RecordsModule {}
