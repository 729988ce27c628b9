import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadSync } from '@grpc/proto-loader';
import { CONTRACTS, PROTO_LOADER_OPTIONS, PROTO_ROOT, envelopesTopic } from './index';
import { EnvelopeType } from './generated/client/sotto/common/v1/envelope';

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
      const failure = await run(process.execPath, [buf, 'lint'], { cwd: dir }).then(
        () => 'passed',
        (error: { stdout: string }) => error.stdout,
      );
      expect(failure).toContain('Service name "Bad" should be suffixed with "Service"');
      expect(failure).toContain('should be named "DoRequest"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each(Object.entries(CONTRACTS))('%s: every declared service is in its proto', (_name, contract) => {
    const definition = loadSync(
      contract.protoFiles.map((file) => join(PROTO_ROOT, file)),
      PROTO_LOADER_OPTIONS,
    );
    for (const service of contract.services) {
      expect(definition[service]).toBeDefined();
    }
    for (const file of contract.protoFiles) {
      expect(readFileSync(join(PROTO_ROOT, file), 'utf8')).toContain(`package ${contract.package};`);
    }
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
});
