import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { CALL_ADMISSION } from '@sotto/platform/grpc';
import { GATEWAY_ENV, type GatewayEnv } from '../env';
import { GatewayCallAdmission } from './call-admission';
import { CALL_LIMIT_RATES, CallLimits, type CallLimitRates } from './call-limits';
import { CallLimitsInterceptor } from './limits.interceptor';

/** The rates of the call limits, as the environment sets them. */
export function callLimitRates(env: GatewayEnv): CallLimitRates {
  return {
    register_per_source: env.RATE_LIMIT_REGISTER_PER_SOURCE,
    recover_account_per_source: env.RATE_LIMIT_RECOVER_ACCOUNT_PER_SOURCE,
    send_per_device: env.RATE_LIMIT_SEND_PER_DEVICE,
    send_per_destination: env.RATE_LIMIT_SEND_PER_DESTINATION,
    sealed_send_per_source: env.RATE_LIMIT_SEALED_SEND_PER_SOURCE,
    sealed_send_per_destination: env.RATE_LIMIT_SEALED_SEND_PER_DESTINATION,
    multi_recipient_send_per_source: env.RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_SOURCE,
    multi_recipient_send_per_destination: env.RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_DESTINATION,
    lookup_username_per_account: env.RATE_LIMIT_LOOKUP_USERNAME_PER_ACCOUNT,
    lookup_account_per_account: env.RATE_LIMIT_LOOKUP_ACCOUNT_PER_ACCOUNT,
    prekey_bundles_per_account: env.RATE_LIMIT_PREKEY_BUNDLES_PER_ACCOUNT,
    connect_per_device: env.RATE_LIMIT_CONNECT_PER_DEVICE,
    other_calls_per_device: env.RATE_LIMIT_OTHER_CALLS_PER_DEVICE,
    create_link_per_source: env.RATE_LIMIT_CREATE_LINK_PER_SOURCE,
    wait_for_link_per_source: env.RATE_LIMIT_WAIT_FOR_LINK_PER_SOURCE,
    complete_link_per_source: env.RATE_LIMIT_COMPLETE_LINK_PER_SOURCE,
    approve_link_per_account: env.RATE_LIMIT_APPROVE_LINK_PER_ACCOUNT,
    device_lists_per_account: env.RATE_LIMIT_DEVICE_LISTS_PER_ACCOUNT,
  };
}

/** Rate limits on every public call (see CALL_LIMITS), direct methods' included (GatewayCallAdmission). */
@Module({
  providers: [
    CallLimits,
    { provide: CALL_LIMIT_RATES, inject: [GATEWAY_ENV], useFactory: callLimitRates },
    { provide: APP_INTERCEPTOR, useClass: CallLimitsInterceptor },
    { provide: CALL_ADMISSION, useClass: GatewayCallAdmission },
  ],
  exports: [CallLimits],
})
export class LimitsModule {}
