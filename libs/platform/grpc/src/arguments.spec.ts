import { status } from '@grpc/grpc-js';
import { RpcException } from '@nestjs/microservices';
import { parseAccountId } from '@sotto/platform/ids';
import { requireAccountId, requireDeviceId, validArgument } from './arguments';

const ACCOUNT = '0190a3f1-6a2b-7c3d-8e4f-5a6b7c8d9e0f';

function refusal(call: () => unknown): unknown {
  try {
    call();
  } catch (error) {
    return error instanceof RpcException ? error.getError() : error;
  }
  throw new Error('expected a refusal');
}

describe('request ids', () => {
  it('returns what parses', () => {
    expect(requireAccountId(ACCOUNT)).toBe(ACCOUNT);
    expect(requireDeviceId(3)).toBe(3);
    expect(validArgument(parseAccountId(ACCOUNT, 'target_account_id'))).toBe(ACCOUNT);
  });

  it.each([
    ['an empty account id', () => requireAccountId(''), 'account_id: is required'],
    [
      'a username',
      () => requireAccountId('alice', 'requester_account_id'),
      'requester_account_id: is not an account id',
    ],
    ['device 0', () => requireDeviceId(0), 'device_id: must be a device id of 1 or more'],
    [
      'a fractional device',
      () => requireDeviceId(1.5, 'target_device_id'),
      'target_device_id: must be a device id of 1 or more',
    ],
  ])('refuses %s with INVALID_ARGUMENT naming the field', (_case, call, message) => {
    expect(refusal(call)).toEqual({ code: status.INVALID_ARGUMENT, message });
  });
});
