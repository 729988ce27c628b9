import { Module } from '@nestjs/common';
import { AccountsRepository } from './accounts.repository';
import { AccountsService } from './accounts.service';
import { DeviceListChanges } from './device-list-changes';

@Module({
  providers: [AccountsRepository, AccountsService, DeviceListChanges],
  exports: [AccountsRepository, AccountsService, DeviceListChanges],
})
export class AccountsModule {}
