import { dirname } from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import { HEALTH_PROTO_PATH } from '@sotto/contracts';
import { withProtocMapEntryNames } from './reflection';

interface Message {
  name: string;
  field: { name: string; typeName?: string }[];
  nestedType: Message[];
  options?: { mapEntry?: boolean };
}

/** The message `name` as the definition's file descriptors describe it. */
function messageIn(definition: ReturnType<typeof loadSync>, name: string): Message {
  const entry = definition[`grpc.health.v1.${name}`] as { fileDescriptorProtos: Buffer[] };
  for (const bytes of entry.fileDescriptorProtos) {
    const file = FileDescriptorProto.decode(bytes) as unknown as { messageType: Message[] };
    const found = file.messageType.find((message) => message.name === name);
    if (found) return found;
  }
  throw new Error(`${name} is not described`);
}

describe('reflection descriptors', () => {
  const loaded = () => loadSync(HEALTH_PROTO_PATH, { includeDirs: [dirname(HEALTH_PROTO_PATH)] });

  it("names a map field's entry type as protoc does, so grpcurl takes the file", () => {
    // What protobufjs alone produces, which grpcurl refuses as an invalid map.
    expect(messageIn(loaded(), 'HealthListResponse').nestedType[0]?.name).toBe('Statuses');

    const fixed = messageIn(withProtocMapEntryNames(loaded()), 'HealthListResponse');
    expect(fixed.nestedType.map((nested) => [nested.name, nested.options?.mapEntry])).toEqual([
      ['StatusesEntry', true],
    ]);
    expect(fixed.field).toEqual([expect.objectContaining({ name: 'statuses', typeName: 'StatusesEntry' })]);
    expect(fixed.nestedType[0]?.field.map((field) => field.name)).toEqual(['key', 'value']);
  });

  it('leaves messages without maps as they were', () => {
    const before = messageIn(loaded(), 'HealthCheckResponse');
    expect(messageIn(withProtocMapEntryNames(loaded()), 'HealthCheckResponse')).toEqual(before);
  });
});
