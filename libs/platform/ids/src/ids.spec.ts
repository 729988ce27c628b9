import { randomUUID } from 'node:crypto';
import {
  formatDeviceCredential,
  isUuid,
  parseAccountId,
  parseDeviceCredential,
  parseDeviceId,
  type AccountId,
  type DeviceId,
} from './index';

const ACCOUNT = '0190a3f1-6a2b-7c3d-8e4f-5a6b7c8d9e0f';
const SECRET = 'c2VjcmV0LXNlY3JldC1zZWNyZXQ';

describe('parseAccountId', () => {
  it('accepts the ids the directory hands out', () => {
    const id = randomUUID();
    expect(parseAccountId(id)).toEqual({ ok: true, value: id });
  });

  it.each([
    ['empty', '', 'account_id: is required'],
    ['a username', 'alice', 'account_id: is not an account id'],
    ['SQL', "x' OR 1=1 --", 'account_id: is not an account id'],
    ['upper case', ACCOUNT.toUpperCase(), 'account_id: is not an account id'],
    ['without hyphens', ACCOUNT.replaceAll('-', ''), 'account_id: is not an account id'],
    ['36 characters of the wrong shape', '-'.repeat(36), 'account_id: is not an account id'],
    ['with a newline after it', `${ACCOUNT}\n`, 'account_id: is not an account id'],
  ])('refuses %s, naming the field', (_case, value, message) => {
    const parsed = parseAccountId(value);
    expect(parsed).toEqual({
      ok: false,
      error: { field: 'account_id', reason: expect.any(String), message },
    });
  });

  it('names the field it was given', () => {
    expect(parseAccountId('alice', 'target_account_id')).toEqual({
      ok: false,
      error: {
        field: 'target_account_id',
        reason: 'is not an account id',
        message: 'target_account_id: is not an account id',
      },
    });
  });
});

describe('parseDeviceId', () => {
  it.each([1, 2, 127, 0x7fffffff])('accepts %d', (value) => {
    expect(parseDeviceId(value)).toEqual({ ok: true, value });
  });

  it.each([0, -1, 1.5, 0x80000000, Number.NaN, Number.POSITIVE_INFINITY])('refuses %d', (value) => {
    expect(parseDeviceId(value, 'target_device_id')).toEqual({
      ok: false,
      error: {
        field: 'target_device_id',
        reason: 'must be a device id of 1 or more',
        message: 'target_device_id: must be a device id of 1 or more',
      },
    });
  });
});

describe('device credentials', () => {
  it('reads back what formatDeviceCredential writes', () => {
    const credential = { accountId: ACCOUNT as AccountId, deviceId: 3 as DeviceId, secret: SECRET };
    const header = formatDeviceCredential(credential);
    expect(header).toBe(`${ACCOUNT}.3:${SECRET}`);
    expect(parseDeviceCredential(header)).toEqual({ ok: true, value: credential });
  });

  it.each([undefined, '', Buffer.from(`${ACCOUNT}.1:${SECRET}`)])(
    'asks for credentials when given %p',
    (header) => {
      expect(parseDeviceCredential(header)).toEqual({
        ok: false,
        error: {
          field: 'authorization',
          reason: 'credentials are required',
          message: 'authorization: credentials are required',
        },
      });
    },
  );

  it.each([
    ['no device', `${ACCOUNT}:${SECRET}`],
    ['no secret', `${ACCOUNT}.1`],
    ['a short secret', `${ACCOUNT}.1:short`],
    ['a secret with other characters', `${ACCOUNT}.1:${SECRET}+/=`],
    ['a username for the account', `alice.1:${SECRET}`],
    ['an account id of the wrong shape', `${'-'.repeat(36)}.1:${SECRET}`],
    ['device 0', `${ACCOUNT}.0:${SECRET}`],
    ['a device id past 2^31 - 1', `${ACCOUNT}.2147483648:${SECRET}`],
    ['a negative device id', `${ACCOUNT}.-1:${SECRET}`],
    ['a second credential', `${ACCOUNT}.1:${SECRET},${ACCOUNT}.2:${SECRET}`],
  ])('refuses %s with the shape it expects', (_case, header) => {
    expect(parseDeviceCredential(header)).toEqual({
      ok: false,
      error: {
        field: 'authorization',
        reason: 'expected <account-id>.<device-id>:<secret>',
        message: 'authorization: expected <account-id>.<device-id>:<secret>',
      },
    });
  });
});

describe('isUuid', () => {
  it('holds for the lower-case form only', () => {
    expect(isUuid(ACCOUNT)).toBe(true);
    expect(isUuid(ACCOUNT.toUpperCase())).toBe(false);
    expect(isUuid(`{${ACCOUNT}}`)).toBe(false);
  });
});
