import { Module } from '@nestjs/common';
import { AccountsRepository } from './accounts.repository';
import { AccountsService } from './accounts.service';
import { DeviceListChanges, UnidentifiedAccessChanges } from './account-changes';

@Module({
  providers: [AccountsRepository, AccountsService, DeviceListChanges, UnidentifiedAccessChanges],
  exports: [AccountsRepository, AccountsService, DeviceListChanges, UnidentifiedAccessChanges],
})
export class AccountsModule {}
