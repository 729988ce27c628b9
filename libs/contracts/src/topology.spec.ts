import { CONTRACTS } from './registry';
import {
  calleesOf,
  callersOf,
  identityFromSubjectAltName,
  mayCall,
  SERVICE_IDENTITIES,
  TOPOLOGY,
} from './topology';

describe('the topology', () => {
  it('names the callers of every method of every internal contract, and nothing else', () => {
    for (const service of SERVICE_IDENTITIES.filter((name) => name !== 'gateway')) {
      const paths = CONTRACTS[service].definitions.flatMap((definition) =>
        Object.values(definition).map((method) => method.path),
      );
      expect([service, [...TOPOLOGY[service].keys()].sort()]).toEqual([service, paths.sort()]);
    }
  });

  it("gives the relay's Send to the gateway alone, and presence's DeliverEphemeral to the relay alone", () => {
    const send = '/sotto.relay.v1.RelayService/Send';
    expect(SERVICE_IDENTITIES.filter((caller) => mayCall('message-relay', caller, send))).toEqual([
      'gateway',
    ]);
    const deliverEphemeral = '/sotto.presence.v1.PresenceService/DeliverEphemeral';
    expect(SERVICE_IDENTITIES.filter((caller) => mayCall('presence', caller, deliverEphemeral))).toEqual([
      'message-relay',
    ]);
    const listDevices = '/sotto.directory.v1.DirectoryService/ListDevices';
    expect(SERVICE_IDENTITIES.filter((caller) => mayCall('prekey-directory', caller, listDevices))).toEqual([
      'gateway',
      'message-relay',
    ]);
  });

  it('opens health and reflection to every identity, the operator included, and nothing else to the operator', () => {
    for (const service of SERVICE_IDENTITIES) {
      expect(mayCall(service, 'operator', '/grpc.health.v1.Health/Check')).toBe(true);
      expect(mayCall(service, 'operator', '/grpc.reflection.v1.ServerReflection/ServerReflectionInfo')).toBe(
        true,
      );
      expect(mayCall(service, 'presence', '/grpc.health.v1.Health/Watch')).toBe(true);
    }
    expect(mayCall('message-relay', 'operator', '/sotto.relay.v1.RelayService/Send')).toBe(false);
  });

  it('refuses a method it does not list', () => {
    expect(mayCall('presence', 'gateway', '/sotto.presence.v1.PresenceService/Teleport')).toBe(false);
    expect(mayCall('presence', 'gateway', '/sotto.relay.v1.RelayService/Send')).toBe(false);
  });

  it('says who calls whom', () => {
    expect(callersOf('presence')).toEqual(['gateway', 'message-relay']);
    expect(callersOf('gateway')).toEqual([]);
    expect(calleesOf('message-relay')).toEqual(['prekey-directory', 'presence']);
    expect(calleesOf('gateway')).toEqual([
      'prekey-directory',
      'message-relay',
      'presence',
      'backup-store',
      'key-vault',
    ]);
    expect(calleesOf('key-vault')).toEqual([]);
  });
});

describe("a certificate's identity", () => {
  it.each([
    ['URI:spiffe://sotto/gateway, DNS:localhost, IP Address:127.0.0.1', 'gateway'],
    ['DNS:localhost, URI:spiffe://sotto/operator', 'operator'],
    ['URI:spiffe://sotto/gateway, URI:spiffe://sotto/operator', undefined],
    ['URI:spiffe://sotto/mallory', undefined],
    ['URI:spiffe://other/gateway', undefined],
    ['DNS:"localhost, URI:spiffe://sotto/gateway"', undefined],
    ['DNS:gateway', undefined],
    [undefined, undefined],
  ])('of %p is %p', (subjectAltName, identity) => {
    expect(identityFromSubjectAltName(subjectAltName)).toBe(identity);
  });
});
