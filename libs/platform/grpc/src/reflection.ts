import { FileDescriptorProto } from 'protobufjs/ext/descriptor';
import type { PackageDefinition } from '@grpc/proto-loader';

interface MessageDescriptor {
  name?: string;
  field?: { name?: string; typeName?: string }[];
  nestedType?: MessageDescriptor[];
  enumType?: { name?: string }[];
  options?: { mapEntry?: boolean };
}

interface FileDescriptor {
  name?: string;
  package?: string;
  dependency?: string[];
  messageType?: MessageDescriptor[];
  enumType?: { name?: string }[];
  service?: { method?: { inputType?: string; outputType?: string }[] }[];
}

/** `statuses` → `StatusesEntry`, the name protoc gives a map field's entry type. */
function entryName(fieldName: string): string {
  const camel = fieldName.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

function renameMapEntries(message: MessageDescriptor): void {
  for (const nested of message.nestedType ?? []) renameMapEntries(nested);
  for (const nested of message.nestedType ?? []) {
    if (!nested.options?.mapEntry || nested.name === undefined) continue;
    const field = message.field?.find((each) => each.typeName === nested.name);
    if (field?.name === undefined) continue;
    const name = entryName(field.name);
    nested.name = name;
    field.typeName = name;
  }
}

/** Every message and enum a file declares, by full name (no leading dot). */
function declaredTypes(file: FileDescriptor): string[] {
  const names: string[] = [];
  const walk = (scope: string, messages: MessageDescriptor[], enums: { name?: string }[]): void => {
    for (const each of enums) names.push(`${scope}${each.name ?? ''}`);
    for (const message of messages) {
      const name = `${scope}${message.name ?? ''}`;
      names.push(name);
      walk(`${name}.`, message.nestedType ?? [], message.enumType ?? []);
    }
  };
  walk(file.package ? `${file.package}.` : '', file.messageType ?? [], file.enumType ?? []);
  return names;
}

/**
 * The full name (with a leading dot) a type reference means from `scope`, by
 * protobuf's rules: the innermost enclosing scope that declares it wins.
 */
function resolve(reference: string, scope: string, known: ReadonlyMap<string, string>): string | undefined {
  if (reference.startsWith('.')) return known.has(reference.slice(1)) ? reference : undefined;
  const parts = scope ? scope.split('.') : [];
  for (let depth = parts.length; depth >= 0; depth--) {
    const candidate = [...parts.slice(0, depth), reference].join('.');
    if (known.has(candidate)) return `.${candidate}`;
  }
  return undefined;
}

/**
 * protobufjs describes the loaded files in a way protoc never would, and
 * reflection clients such as grpcurl refuse it: a map field's entry type is
 * named after the field (`Statuses`, not `StatusesEntry`), type references are
 * relative (`common.v1.DeviceKeys`), and no file lists the files it imports.
 * This rewrites every file descriptor of the definition as protoc would have:
 * entry types renamed, references fully qualified, imports listed. Server
 * reflection then describes every service, grpc.health.v1 included.
 */
export function withProtocDescriptors(definition: PackageDefinition): PackageDefinition {
  const original = new Set<Buffer>();
  for (const entry of Object.values(definition)) {
    const files = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    if (Array.isArray(files)) for (const bytes of files as Buffer[]) original.add(bytes);
  }
  const decoded = new Map<Buffer, FileDescriptor>();
  const declaredIn = new Map<string, string>();
  for (const bytes of original) {
    const file = FileDescriptorProto.decode(bytes) as unknown as FileDescriptor;
    decoded.set(bytes, file);
    for (const message of file.messageType ?? []) renameMapEntries(message);
    for (const name of declaredTypes(file)) declaredIn.set(name, file.name ?? '');
  }

  const encoded = new Map<Buffer, Buffer>();
  for (const [bytes, file] of decoded) {
    const imports = new Set<string>();
    const qualify = (reference: string | undefined, scope: string): string | undefined => {
      if (!reference) return reference;
      const full = resolve(reference, scope, declaredIn);
      if (full === undefined) return reference;
      const home = declaredIn.get(full.slice(1));
      if (home !== undefined && home !== file.name) imports.add(home);
      return full;
    };
    const walk = (scope: string, messages: MessageDescriptor[]): void => {
      for (const message of messages) {
        const name = `${scope}${scope ? '.' : ''}${message.name ?? ''}`;
        for (const field of message.field ?? []) field.typeName = qualify(field.typeName, name);
        walk(name, message.nestedType ?? []);
      }
    };
    walk(file.package ?? '', file.messageType ?? []);
    for (const service of file.service ?? []) {
      for (const method of service.method ?? []) {
        method.inputType = qualify(method.inputType, file.package ?? '');
        method.outputType = qualify(method.outputType, file.package ?? '');
      }
    }
    file.dependency = [...new Set([...(file.dependency ?? []), ...imports])].sort();
    encoded.set(bytes, Buffer.from(FileDescriptorProto.encode(file as never).finish()));
  }

  const result: PackageDefinition = {};
  for (const [name, entry] of Object.entries(definition)) {
    const files = (entry as { fileDescriptorProtos?: unknown }).fileDescriptorProtos;
    result[name] = Array.isArray(files)
      ? Object.assign({}, entry, {
          fileDescriptorProtos: (files as Buffer[]).map((bytes) => encoded.get(bytes) ?? bytes),
        })
      : entry;
  }
  return result;
}
