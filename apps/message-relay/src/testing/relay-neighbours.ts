import { randomUUID } from 'node:crypto';
import { generateDeviceKeys, publicDeviceKeys, unary } from '@sotto/client-sdk';
import { DirectoryServiceClient } from '@sotto/contracts/generated/sotto/directory/v1/directory';
import type { QueuedEnvelope, RelayServiceClient } from '@sotto/contracts/generated/sotto/relay/v1/relay';
import { callerCredentials, createTestCluster, type TestCluster } from '@sotto/testing';

/** An account registered at the directory, with its one device (device 1). */
export interface DirectoryAccount {
  readonly accountId: string;
  readonly registrationId: number;
  readonly username: string;
}

/**
 * A cluster running what the relay calls (the directory and presence), and
 * the directory as the gateway reaches it, to register the accounts a test
 * sends between: the relay checks every send against their device lists.
 */
export async function startRelayNeighbours(): Promise<{
  cluster: TestCluster;
  directory: DirectoryServiceClient;
}> {
  const cluster = await createTestCluster();
  await Promise.all([cluster.start('prekey-directory'), cluster.start('presence')]);
  const directory = new DirectoryServiceClient(
    cluster.addresses['prekey-directory'].grpc,
    callerCredentials('gateway'),
  );
  return { cluster, directory };
}

/** Registers a new account with one device directly at the directory, as the gateway passes Register on. */
export async function registerAtDirectory(directory: DirectoryServiceClient): Promise<DirectoryAccount> {
  const keys = generateDeviceKeys(1);
  const username = `u_${randomUUID().replace(/-/g, '').slice(0, 12)}`;
  const { accountId } = await unary(directory.register.bind(directory), {
    username,
    identityKey: Buffer.from(keys.identity.publicKey.serialize()),
    device: publicDeviceKeys(keys),
  });
  return { accountId, registrationId: keys.registrationId, username };
}

/** What the device's mailbox holds now, oldest first (at most 100 envelopes). */
export async function mailboxOf(
  client: RelayServiceClient,
  accountId: string,
  deviceId = 1,
): Promise<QueuedEnvelope[]> {
  const { envelopes } = await unary(client.readMailbox.bind(client), {
    accountId,
    deviceId,
    afterSequence: '0',
    limit: 100,
    maxBytes: 0,
  });
  return envelopes;
}

/**
 * Reads the device's mailbox until it holds at least `count` envelopes, or a
 * minute has passed (routing is asynchronous by design); what it holds then.
 */
export async function mailboxHolding(
  client: RelayServiceClient,
  accountId: string,
  count: number,
  deviceId = 1,
): Promise<QueuedEnvelope[]> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const envelopes = await mailboxOf(client, accountId, deviceId);
    if (envelopes.length >= count || Date.now() > deadline) return envelopes;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
