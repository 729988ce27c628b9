import { EnvelopeType } from '@sotto/contracts/generated/sotto/common/v1/envelope';
import { SendRequest } from '@sotto/contracts/generated/sotto/gateway/v1/gateway';
import { opaqueSendRequest, sendRequest } from './send-request';

describe('the Send request builders', () => {
  it('stamp the client clock, are not ephemeral unless asked, and survive the wire', () => {
    const before = Date.now();
    const envelope = {
      destinationDeviceId: 2,
      destinationRegistrationId: 77,
      type: EnvelopeType.ENVELOPE_TYPE_PREKEY_MESSAGE,
      content: Uint8Array.of(1, 2, 3),
    };
    const request = sendRequest('acct', [envelope]);
    expect(request.destinationAccountId).toBe('acct');
    expect(request.ephemeral).toBe(false);
    expect(Number(request.clientTimestampMs)).toBeGreaterThanOrEqual(before);
    expect(Number(request.clientTimestampMs)).toBeLessThanOrEqual(Date.now());
    expect(sendRequest('acct', [envelope], { ephemeral: true }).ephemeral).toBe(true);
    const decoded = SendRequest.decode(SendRequest.encode(request).finish());
    expect(decoded.envelopes).toEqual([{ ...envelope, content: Uint8Array.of(1, 2, 3) }]);
  });

  it('send opaque content as one ciphertext envelope to device 1, or to the device named', () => {
    const content = new TextEncoder().encode('any bytes');
    expect(opaqueSendRequest({ accountId: 'acct', registrationId: 9 }, content).envelopes).toEqual([
      {
        destinationDeviceId: 1,
        destinationRegistrationId: 9,
        type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
        content,
      },
    ]);
    const toThird = opaqueSendRequest({ accountId: 'acct', registrationId: 9, deviceId: 3 }, content);
    expect(toThird.destinationAccountId).toBe('acct');
    expect(toThird.envelopes.map((envelope) => envelope.destinationDeviceId)).toEqual([3]);
  });
});
