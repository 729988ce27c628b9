/**
 * An account's id: the UUID the directory assigned it, in the lower-case form
 * `randomUUID` writes. Branded so that no other string (a username above all)
 * stands in for one.
 */
export type AccountId = string & { readonly __brand: 'AccountId' };

/**
 * A device's id within its account: a whole number from 1 to 2^31 - 1 (what
 * the directory's integer columns hold). Branded so that a registration id or
 * a count never stands in for one.
 */
export type DeviceId = number & { readonly __brand: 'DeviceId' };

/** What a device presents on every call, as `<account-id>.<device-id>:<secret>`. */
export interface DeviceCredential {
  readonly accountId: AccountId;
  readonly deviceId: DeviceId;
  readonly secret: string;
}

/** Why a field was refused; `message` names the field first, as every Sotto error does. */
export interface InvalidField {
  readonly field: string;
  readonly reason: string;
  readonly message: string;
}

export type Parsed<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: InvalidField };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAX_DEVICE_ID = 0x7fffffff;
// The directory hands out 32 random bytes in base64url; the range leaves room to change that.
const CREDENTIAL = /^([^.:]*)\.(\d{1,10}):([A-Za-z0-9_-]{16,128})$/;
const CREDENTIAL_SHAPE = 'expected <account-id>.<device-id>:<secret>';

const valid = <T>(value: T): Parsed<T> => ({ ok: true, value });
const invalid = <T>(field: string, reason: string): Parsed<T> => ({
  ok: false,
  error: { field, reason, message: `${field}: ${reason}` },
});

/** A UUID in the lower-case form `randomUUID` writes, as every id Sotto hands out is. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

export function parseAccountId(value: string, field = 'account_id'): Parsed<AccountId> {
  if (value === '') return invalid(field, 'is required');
  return isUuid(value) ? valid(value as AccountId) : invalid(field, 'is not an account id');
}

export function parseDeviceId(value: number, field = 'device_id'): Parsed<DeviceId> {
  return Number.isInteger(value) && value >= 1 && value <= MAX_DEVICE_ID
    ? valid(value as DeviceId)
    : invalid(field, 'must be a device id of 1 or more');
}

/**
 * The `authorization` metadata of a call. Any malformed credential gets the
 * same answer, which says what the shape should be; whether the device
 * exists and the secret is right is for the directory to say.
 */
export function parseDeviceCredential(header: unknown, field = 'authorization'): Parsed<DeviceCredential> {
  if (typeof header !== 'string' || header === '') return invalid(field, 'credentials are required');
  const match = CREDENTIAL.exec(header);
  if (!match) return invalid(field, CREDENTIAL_SHAPE);
  const accountId = parseAccountId(match[1]);
  const deviceId = parseDeviceId(Number(match[2]));
  if (!accountId.ok || !deviceId.ok) return invalid(field, CREDENTIAL_SHAPE);
  return valid({ accountId: accountId.value, deviceId: deviceId.value, secret: match[3] });
}

/**
 * The `authorization` metadata for a device's calls; parseDeviceCredential
 * reads it back. Plain strings are fine here: a client formats what the
 * server gave it, and the server checks it when it reads it.
 */
export function formatDeviceCredential(credential: {
  readonly accountId: string;
  readonly deviceId: number;
  readonly secret: string;
}): string {
  return `${credential.accountId}.${credential.deviceId}:${credential.secret}`;
}
