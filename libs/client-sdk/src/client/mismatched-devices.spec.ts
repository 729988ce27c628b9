import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { MismatchedDevices } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { deviceList } from './contacts';
import { MISMATCHED_DEVICES_TRAILER, mismatchedDevices, sessionRepair } from './mismatched-devices';

/** A refused call as grpc-js reports it: code, details and the trailers the server sent. */
function refused(code: status, trailer?: MismatchedDevices): ServiceError {
  const metadata = new Metadata();
  if (trailer)
    metadata.set(MISMATCHED_DEVICES_TRAILER, Buffer.from(MismatchedDevices.encode(trailer).finish()));
  return Object.assign(new Error(`${code}: refused`), { code, details: 'refused', metadata });
}

describe('mismatchedDevices', () => {
  const mismatch = { missingDeviceIds: [4], extraDeviceIds: [3], staleDeviceIds: [2] };

  it('reads the devices the relay names when it refuses a send', () => {
    expect(mismatchedDevices(refused(status.FAILED_PRECONDITION, mismatch))).toEqual(mismatch);
  });

  it('finds none in a refusal for any other reason, so the send is not retried', () => {
    expect(mismatchedDevices(refused(status.FAILED_PRECONDITION))).toBeUndefined();
    expect(mismatchedDevices(refused(status.INVALID_ARGUMENT, mismatch))).toBeUndefined();
    expect(mismatchedDevices(refused(status.UNAVAILABLE))).toBeUndefined();
  });
});

describe('sessionRepair', () => {
  it('drops removed and stale sessions, fetches new and stale devices, and forgets removed ones', () => {
    const repair = sessionRepair([1, 2, 3], {
      missingDeviceIds: [4],
      extraDeviceIds: [3],
      staleDeviceIds: [2],
    });
    expect(repair).toEqual({ drop: [3, 2], keep: [1, 2], fetch: [4, 2] });
    // Once the fetched devices have sessions, the list is the account's devices as the server knows them.
    expect(deviceList([...repair.keep, ...repair.fetch])).toEqual([1, 2, 4]);
  });

  it('asks for nothing when the server only reports removed devices', () => {
    expect(sessionRepair([1, 2], { missingDeviceIds: [], extraDeviceIds: [2], staleDeviceIds: [] })).toEqual({
      drop: [2],
      keep: [1],
      fetch: [],
    });
  });

  it('adds the first devices of an account this device knew none of (its own other devices)', () => {
    expect(sessionRepair([], { missingDeviceIds: [2, 3], extraDeviceIds: [], staleDeviceIds: [] })).toEqual({
      drop: [],
      keep: [],
      fetch: [2, 3],
    });
  });
});
