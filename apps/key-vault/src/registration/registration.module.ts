import { Module } from '@nestjs/common';
import { RecordsModule } from '../records/records.module';
import { ChangeTokens } from './change-tokens';
import { RegistrationService } from './registration.service';
import { RegistrationSessions } from './registration-sessions';

@Module({
  imports: [RecordsModule],
  providers: [RegistrationSessions, ChangeTokens, RegistrationService],
  exports: [RegistrationService, ChangeTokens],
})
export class RegistrationModule {}
