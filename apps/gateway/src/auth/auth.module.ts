import { Global, Module } from '@nestjs/common';
import { Authenticator } from './authenticator';

@Global()
@Module({ providers: [Authenticator], exports: [Authenticator] })
export class AuthModule {}
