import { execFile } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadSync } from '@grpc/proto-loader';
import {
  CONTRACTS,
  PROTO_LOADER_OPTIONS,
  PROTO_ROOT,
  credentialRevocations,
  deviceListChanges,
  envelopesTopic,
  serviceNameOf,
  unidentifiedAccessChanges,
} from './index';
import { EnvelopeType } from './generated/sotto/common/v1/envelope';

const run = promisify(execFile);
const buf = require.resolve('@bufbuild/buf/bin/buf');

describe('contracts', () => {
  it('pass buf lint', async () => {
    const { stdout, stderr } = await run(process.execPath, [buf, 'lint'], { cwd: join(__dirname, '..') });
    expect(stdout + stderr).toBe('');
  });

  it('buf lint rejects a contract that breaks the style rules', async () => {
    // Guards against a buf setup that would lint nothing and always pass.
    const dir = mkdtempSync(join(tmpdir(), 'sotto-buf-'));
    try {
      mkdirSync(join(dir, 'proto/sotto/bad/v1'), { recursive: true });
      copyFileSync(join(__dirname, '..', 'buf.yaml'), join(dir, 'buf.yaml'));
      writeFileSync(
        join(dir, 'proto/sotto/bad/v1/bad.proto'),
        'syntax = "proto3";\npackage sotto.bad.v1;\nservice Bad { rpc Do(Thing) returns (Thing); }\nmessage Thing {}\n',
      );
      const linted = run(process.execPath, [buf, 'lint'], { cwd: dir });
      await expect(linted).rejects.toMatchObject({
        stdout: expect.stringContaining('Service name "Bad" should be suffixed with "Service"') as string,
      });
      await expect(linted).rejects.toMatchObject({
        stdout: expect.stringContaining('should be named "DoRequest"') as string,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('pass buf breaking against the checked-in baseline', async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      [buf, 'breaking', '--against', 'breaking-baseline.json'],
      {
        cwd: join(__dirname, '..'),
      },
    );
    expect(stdout + stderr).toBe('');
  });

  it('buf breaking rejects a renamed field and a changed field number', async () => {
    // Guards against a baseline or configuration that would let any change through.
    const dir = mkdtempSync(join(tmpdir(), 'sotto-buf-'));
    try {
      cpSync(join(__dirname, '..', 'proto'), join(dir, 'proto'), { recursive: true });
      copyFileSync(join(__dirname, '..', 'buf.yaml'), join(dir, 'buf.yaml'));
      const envelope = join(dir, 'proto/sotto/common/v1/envelope.proto');
      writeFileSync(
        envelope,
        readFileSync(envelope, 'utf8')
          .replace('string guid = 1;', 'string id = 1;')
          .replace('bytes content = 10;', 'bytes content = 11;'),
      );
      const checked = run(
        process.execPath,
        [buf, 'breaking', '--against', join(__dirname, '..', 'breaking-baseline.json')],
        { cwd: dir },
      );
      await expect(checked).rejects.toMatchObject({
        stdout: expect.stringContaining('changed name from "guid" to "id"') as string,
      });
      await expect(checked).rejects.toMatchObject({
        stdout: expect.stringContaining(
          'Previously present field "10" with name "content" on message "Envelope" was deleted',
        ) as string,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(Object.entries(CONTRACTS))(
    '%s: the generated definitions are exactly the services and methods of its proto',
    (_name, contract) => {
      const loaded = loadSync(
        contract.protoFiles.map((file) => join(PROTO_ROOT, file)),
        PROTO_LOADER_OPTIONS,
      );
      const shape = (methods: object) =>
        Object.values(
          methods as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
        )
          .map(({ path, requestStream, responseStream }) => ({ path, requestStream, responseStream }))
          .sort((a, b) => a.path.localeCompare(b.path));
      const inProto = Object.keys(loaded).filter(
        (name) => name.startsWith(`${contract.package}.`) && !('format' in loaded[name]),
      );
      expect([...contract.services].sort()).toEqual(inProto.sort());
      contract.definitions.forEach((definition, index) => {
        expect(shape(definition)).toEqual(shape(loaded[contract.services[index]]));
      });
      for (const file of contract.protoFiles) {
        expect(readFileSync(join(PROTO_ROOT, file), 'utf8')).toContain(`package ${contract.package};`);
      }
    },
  );

  it('names a service from its generated definition', () => {
    expect(serviceNameOf(CONTRACTS['message-relay'].definitions[0])).toBe('sotto.relay.v1.RelayService');
    expect(() => serviceNameOf({})).toThrow('a service definition without methods');
  });

  it('envelope topic values round-trip through protobuf', () => {
    const envelope = {
      guid: '01890a5d-ac96-774b-bcce-b302099a8057',
      type: EnvelopeType.ENVELOPE_TYPE_CIPHERTEXT,
      sourceAccountId: 'a',
      sourceDeviceId: 1,
      destinationAccountId: 'b',
      destinationDeviceId: 2,
      clientTimestampMs: '1700000000000',
      serverTimestampMs: '1700000000001',
      ephemeral: false,
      content: Buffer.from([1, 2, 3]),
    };
    const decoded = envelopesTopic.decodeValue(envelopesTopic.encodeValue(envelope));
    expect(decoded).toEqual({ ...envelope, content: Buffer.from([1, 2, 3]) });
    expect(envelopesTopic.TOPIC).toBe('sotto.envelopes.v1');
  });

  it('credential revocations round-trip through protobuf on their one channel', () => {
    const revocation = { accountId: '01890a5d-ac96-774b-bcce-b302099a8057', deviceIds: [1, 3] };
    expect(credentialRevocations.decode(credentialRevocations.encode(revocation))).toEqual(revocation);
    expect(credentialRevocations.CHANNEL).toBe('sotto:credential-revocations:v1');
  });

  it('unidentified-access changes round-trip through protobuf on their one channel', () => {
    const change = { accountId: '01890a5d-ac96-774b-bcce-b302099a8057' };
    expect(unidentifiedAccessChanges.decode(unidentifiedAccessChanges.encode(change))).toEqual(change);
    expect(unidentifiedAccessChanges.CHANNEL).toBe('sotto:unidentified-access-changes:v1');
    // Its own channel: relays do not hear the gateways' notices, nor gateways the relays'.
    expect(unidentifiedAccessChanges.CHANNEL).not.toBe(deviceListChanges.CHANNEL);
  });
});
