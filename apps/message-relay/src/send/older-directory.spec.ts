import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { unary } from '@sotto/client-sdk';
import {
  DirectoryServiceService,
  type DirectoryServiceClient,
} from '@sotto/contracts/generated/sotto/directory/v1/directory';
import { RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import {
  callerCredentials,
  metricValue,
  relaySendRequest,
  startOlderService,
  type OlderService,
  type TestCluster,
  type TestService,
} from '@sotto/testing';
import {
  registerAtDirectory,
  startRelayNeighbours,
  type DirectoryAccount,
} from '../testing/relay-neighbours';

// A relay upgraded before its directory: the directory has no ListDevicesBatch yet, so it answers
// UNIMPLEMENTED as any gRPC server does for a method it does not know. The relay must fall back to
// one ListDevices per account, keep checking every send against the real device lists, and not
// retry the batch call on every send.

describe('a relay in front of a directory without ListDevicesBatch', () => {
  let cluster: TestCluster;
  let directory: DirectoryServiceClient;
  let older: OlderService;
  let relayService: TestService;
  let relay: RelayServiceClient;

  beforeAll(async () => {
    ({ cluster, directory } = await startRelayNeighbours());
    older = await startOlderService({
      identity: 'prekey-directory',
      definition: DirectoryServiceService,
      target: cluster.addresses['prekey-directory'].grpc,
      caller: 'message-relay',
      without: ['listDevicesBatch'],
    });
    relayService = await cluster.start('message-relay', {
      PREKEY_DIRECTORY_ADDR: older.address,
      KAFKA_CONSUMER_GROUP: `relay-test-${randomUUID()}`,
      // Every send asks the directory, so each one goes through the fallback.
      DEVICE_LIST_CACHE_TTL_MS: '0',
    });
    relay = new RelayServiceClient(relayService.grpc, callerCredentials('gateway'));
  });

  afterAll(async () => {
    relay?.close();
    directory?.close();
    await cluster?.stop();
    await older?.stop();
  });

  const account = (): Promise<DirectoryAccount> => registerAtDirectory(directory);

  const directoryCalls = (): Promise<number> =>
    metricValue(relayService, 'sotto_relay_device_list_directory_calls_total');

  it('checks every send of a batch against the real lists with one ListDevices per account', async () => {
    const [alice, bob, carol, dave] = await Promise.all([account(), account(), account(), account()]);
    const callsBefore = await directoryCalls();
    const { outcomes } = await unary(relay.sendBatch.bind(relay), {
      sends: [
        relaySendRequest(alice, bob, 'to bob'),
        relaySendRequest(alice, carol, 'to carol'),
        relaySendRequest(alice, { ...dave, registrationId: dave.registrationId + 1 }, 'stale'),
        relaySendRequest(alice, { accountId: randomUUID(), registrationId: 1 }, 'nobody'),
      ],
    });
    expect(outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error?.code))).toEqual([
      'ok',
      'ok',
      status.FAILED_PRECONDITION,
      status.NOT_FOUND,
    ]);
    expect(outcomes[2]?.error?.details).toBe('device list mismatch: missing [], extra [], stale [1]');
    // The batch call was tried once, refused, and the four accounts were read one by one.
    expect(older.calls.get('listDevices')).toBe(4);
    expect(await directoryCalls()).toBe(callsBefore + 1 + 4);
    const log = readFileSync(relayService.logFile, 'utf8');
    expect(log).toContain(
      'the directory has no ListDevicesBatch: reading device lists one account at a time',
    );
  });

  it('does not try the batch call again once the directory has refused it', async () => {
    const [alice, bob, carol] = await Promise.all([account(), account(), account()]);
    const listDevicesBefore = older.calls.get('listDevices') ?? 0;
    const callsBefore = await directoryCalls();
    const { outcomes } = await unary(relay.sendBatch.bind(relay), {
      sends: [relaySendRequest(alice, bob, 'again'), relaySendRequest(alice, carol, 'and again')],
    });
    expect(outcomes.map((outcome) => (outcome.ok ? 'ok' : outcome.error?.code))).toEqual(['ok', 'ok']);
    expect((older.calls.get('listDevices') ?? 0) - listDevicesBefore).toBe(2);
    expect(await directoryCalls()).toBe(callsBefore + 2);
  });
});
