import { dirname } from 'node:path';
import { loadSync } from '@grpc/proto-loader';
import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import { CONTRACTS, HEALTH_PROTO_PATH, PROTO_LOADER_OPTIONS } from '@sotto/contracts';
import { withProtocDescriptors } from './reflection';

interface Message {
  name: string;
  field: { name: string; typeName?: string }[];
  nestedType: Message[];
  options?: { mapEntry?: boolean };
}

interface File {
  name: string;
  package: string;
  dependency: string[];
  messageType: Message[];
  enumType: { name: string }[];
  service: { method: { inputType: string; outputType: string }[] }[];
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

    const fixed = messageIn(withProtocDescriptors(loaded()), 'HealthListResponse');
    expect(fixed.nestedType.map((nested) => [nested.name, nested.options?.mapEntry])).toEqual([
      ['StatusesEntry', true],
    ]);
    expect(fixed.field).toEqual([
      expect.objectContaining({
        name: 'statuses',
        typeName: '.grpc.health.v1.HealthListResponse.StatusesEntry',
      }),
    ]);
    expect(fixed.nestedType[0]?.field.map((field) => field.name)).toEqual(['key', 'value']);
  });

  it("qualifies a nested enum's reference and changes nothing else of its message", () => {
    const before = messageIn(loaded(), 'HealthCheckResponse');
    const after = messageIn(withProtocDescriptors(loaded()), 'HealthCheckResponse');
    expect(before.field.map((field) => field.typeName)).toEqual(['ServingStatus']);
    expect(after).toEqual({
      ...before,
      field: [{ ...before.field[0], typeName: '.grpc.health.v1.HealthCheckResponse.ServingStatus' }],
    });
  });

  it('qualifies every type reference and lists the files a file imports, so a client can resolve them', () => {
    const definition = withProtocDescriptors(
      loadSync([...CONTRACTS.gateway.protoFiles], PROTO_LOADER_OPTIONS),
    );
    const files = new Map<string, File>();
    for (const entry of Object.values(definition)) {
      for (const bytes of (entry as { fileDescriptorProtos?: Buffer[] }).fileDescriptorProtos ?? []) {
        const file = FileDescriptorProto.decode(bytes) as unknown as File;
        files.set(file.name, file);
      }
    }
    const gateway = [...files.values()].find((file) => file.package === 'sotto.gateway.v1');
    const common = [...files.values()].find((file) => file.package === 'sotto.common.v1');
    expect(gateway?.dependency).toContain(common?.name);
    const register = gateway?.messageType.find((message) => message.name === 'RegisterRequest');
    expect(register?.field.find((field) => field.name === 'device')?.typeName).toBe(
      '.sotto.common.v1.DeviceKeys',
    );
    // Every reference of every file is absolute and names a type some file declares.
    const declared = new Set<string>();
    const references: string[] = [];
    const walk = (scope: string, messages: Message[]): void => {
      for (const message of messages) {
        declared.add(`${scope}.${message.name}`);
        for (const field of message.field) if (field.typeName) references.push(field.typeName);
        walk(`${scope}.${message.name}`, message.nestedType);
      }
    };
    for (const file of files.values()) {
      walk(`.${file.package}`, file.messageType);
      for (const each of file.enumType) declared.add(`.${file.package}.${each.name}`);
      for (const service of file.service)
        for (const method of service.method) references.push(method.inputType, method.outputType);
    }
    expect(references.length).toBeGreaterThan(50);
    expect(references.filter((reference) => !declared.has(reference))).toEqual([]);
  });
});
