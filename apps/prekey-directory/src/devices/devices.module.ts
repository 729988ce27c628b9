import { Module, type DynamicModule } from '@nestjs/common';
import { AccountsModule } from '../accounts/accounts.module';
import { DevicesRepository } from './devices.repository';
import { DEVICE_LIMITS, DevicesService, type DeviceLimits } from './devices.service';

/** Linking devices, removing them, and the account's signed device list. */
@Module({})
export class DevicesModule {
  static register(limits: DeviceLimits): DynamicModule {
    return {
      module: DevicesModule,
      imports: [AccountsModule],
      providers: [{ provide: DEVICE_LIMITS, useValue: limits }, DevicesRepository, DevicesService],
      exports: [DevicesService],
    };
  }
}
