import { Module, type DynamicModule } from '@nestjs/common';
import { RecordsModule } from '../records/records.module';
import { RegistrationModule } from '../registration/registration.module';
import { LOGIN_LIMITS, LoginRateLimit, type LoginLimits } from './login-rate-limit';
import { LoginSessions } from './login-sessions';
import { LOGIN_TTL_SECONDS, LoginService } from './login.service';
import { SpentVaultSweeper } from './spent-vault-sweeper';

@Module({})
export class LoginModule {
  static register(options: { ttlSeconds: number; limits: LoginLimits }): DynamicModule {
    return {
      module: LoginModule,
      imports: [RecordsModule, RegistrationModule],
      providers: [
        { provide: LOGIN_TTL_SECONDS, useValue: options.ttlSeconds },
        { provide: LOGIN_LIMITS, useValue: options.limits },
        LoginRateLimit,
        LoginSessions,
        LoginService,
        SpentVaultSweeper,
      ],
      exports: [LoginService],
    };
  }
}
