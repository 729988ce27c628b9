import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import type { PackageDefinition } from '@grpc/proto-loader';

interface MessageDescriptor {
  name?: string;
  field?: { name?: string; typeName?: string }[];
  nestedType?: MessageDescriptor[];
  options?: { mapEntry?: boolean };
}

/** `statuses` → `StatusesEntry`, the name protoc gives a map field's entry type. */
function entryName(fieldName: string): string {
  const camel = fieldName.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

function fixMessage(message: MessageDescriptor): void {
  for (const nested of message.nestedType ?? []) fixMessage(nested);
  for (const nested of message.nestedType ?? []) {
    if (!nested.options?.mapEntry || nested.name === undefined) continue;
    const field = message.field?.find((each) => each.typeName === nested.name);
    if (field?.name === undefined) continue;
    const name = entryName(field.name);
    nested.name = name;
    field.typeName = name;
  }
}

/**
 * protobufjs names a map field's entry type after the field (`Statuses`),
 * where protoc and every reflection client expect `StatusesEntry`: grpcurl
 * refuses the whole file ("invalid map: incorrect implicit map entry name").
 * Renames them in every file descriptor of the definition, so reflection
 * describes grpc.health.v1 (its List answer is a map) and any map of ours.
 */
export function withProtocMapEntryNames(definition: PackageDefinition): PackageDefinition {
  const fixed = new Map<Buffer, Buffer>();
  const fix = (bytes: Buffer): Buffer => {
    const known = fixed.get(bytes);
    if (known) return known;
    const file = FileDescriptorProto.decode(bytes) as unknown as { messageType?: MessageDescriptor[] };
    for (const message of file.messageType ?? []) fixMessage(message);
    const encoded = Buffer.from(FileDescriptorProto.encode(file as never).finish());
    fixed.set(bytes, encoded);
    return encoded;
  };
  const result: PackageDefinition = {};
  for (const [name, entry] of Object.entries(definition)) {
    const files = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    result[name] = Array.isArray(files)
      ? Object.assign({}, entry, { fileDescriptorProtos: (files as Buffer[]).map(fix) })
      : entry;
  }
  return result;
}
