import { Injectable } from '@nestjs/common';
import type { CallAdmission, DirectCall } from '@sotto/platform/grpc';
import { Authenticator } from '../auth/authenticator';
import { authenticateCall, isPublic } from '../auth/device-auth.guard';
import { CallLimits } from './call-limits';

/**
 * For the gateway's direct methods (Send and Connect), what DeviceAuthGuard
 * and CallLimitsInterceptor do for the others, in the same order: the
 * device's credential unless the handler is @Public(), then the call limits.
 */
@Injectable()
export class GatewayCallAdmission implements CallAdmission {
  constructor(
    private readonly auth: Authenticator,
    private readonly limits: CallLimits,
  ) {}

  async admit(call: DirectCall): Promise<void> {
    if (!isPublic(call.handler)) await authenticateCall(this.auth, call.metadata, call.peer);
    await this.limits.admit(call);
  }
}
