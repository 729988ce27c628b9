/**
 * The gateway's methods and the shapes of their requests. Methods come from
 * the generated service definitions (CONTRACTS.gateway), so a method added to
 * the contract is fuzzed without a change here; field numbers and types come
 * from the same .proto files through @grpc/proto-loader's descriptors.
 */
import type { MethodDefinition } from '@grpc/grpc-js';
import { loadSync, type MessageTypeDefinition, type PackageDefinition } from '@grpc/proto-loader';
import { CONTRACTS, PROTO_LOADER_OPTIONS } from '@sotto/contracts';

export type ScalarKind =
  | 'string'
  | 'bytes'
  | 'bool'
  | 'enum'
  | 'int32'
  | 'int64'
  | 'uint32'
  | 'uint64'
  | 'sint32'
  | 'sint64'
  | 'fixed32'
  | 'fixed64'
  | 'sfixed32'
  | 'sfixed64'
  | 'float'
  | 'double';

export interface FieldShape {
  /** As in the generated TypeScript: camelCase. */
  readonly name: string;
  readonly number: number;
  readonly repeated: boolean;
  readonly kind: ScalarKind | 'message';
  /** The message type of a `message` field. */
  readonly message?: MessageShape;
}

export interface MessageShape {
  /** Fully qualified, e.g. `sotto.gateway.v1.SendRequest`. */
  readonly name: string;
  readonly fields: FieldShape[];
}

export interface GatewayMethod {
  /** `/sotto.gateway.v1.MessagingService/Send`. */
  readonly path: string;
  /** `MessagingService/Send`, for tables. */
  readonly label: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly request: MessageShape;
  /** The generated codecs, for reading what the fuzzer sent and what it got back. */
  readonly codecs: MethodDefinition<unknown, unknown>;
}

interface FieldDescriptor {
  readonly name: string;
  readonly number: number;
  readonly label: string;
  readonly type: string;
  readonly typeName: string;
}

interface DescriptorProto {
  readonly name: string;
  readonly field: readonly FieldDescriptor[];
}

function isMessageType(value: unknown): value is MessageTypeDefinition<unknown, unknown> {
  return typeof value === 'object' && value !== null && (value as { format?: unknown }).format !== undefined;
}

/** Resolves proto-loader's (possibly relative) type names against the package definition. */
function shapes(definition: PackageDefinition): (typeName: string) => MessageShape {
  const cache = new Map<string, MessageShape>();
  // proto-loader names types relative to where they are used (`common.v1.DeviceKeys`, `SendRequest`).
  const find = (typeName: string): string => {
    const name = typeName.replace(/^\./, '');
    if (definition[name] !== undefined) return name;
    const found = Object.keys(definition).filter((key) => key.endsWith(`.${name}`));
    if (found.length !== 1 || found[0] === undefined) {
      throw new Error(`${typeName} names ${found.length} message types of the gateway's contract, not one`);
    }
    return found[0];
  };
  const shapeOf = (typeName: string): MessageShape => {
    const name = find(typeName);
    const cached = cache.get(name);
    if (cached) return cached;
    const type = definition[name];
    if (!isMessageType(type)) throw new Error(`${name} is not a message type`);
    const descriptor = type.type as DescriptorProto;
    const fields: FieldShape[] = [];
    const shape: MessageShape = { name, fields };
    // Cached before its fields are resolved, so a recursive message resolves to itself.
    cache.set(name, shape);
    for (const field of descriptor.field) {
      const kind = field.type.replace(/^TYPE_/, '').toLowerCase();
      if (kind === 'group') throw new Error(`${name}.${field.name}: groups are not fuzzed`);
      fields.push({
        name: field.name,
        number: field.number,
        repeated: field.label === 'LABEL_REPEATED',
        kind: kind as FieldShape['kind'],
        ...(kind === 'message' ? { message: shapeOf(field.typeName) } : {}),
      });
    }
    return shape;
  };
  return shapeOf;
}

/** Every method of the gateway's public API, in contract order. */
export function gatewayMethods(): GatewayMethod[] {
  const definition = loadSync([...CONTRACTS.gateway.protoFiles], PROTO_LOADER_OPTIONS);
  const shapeOf = shapes(definition);
  return CONTRACTS.gateway.definitions.flatMap((service) =>
    Object.values(service).map((codecs) => {
      const [, serviceName = '', methodName = ''] = codecs.path.split('/');
      const loaded = definition[serviceName] as
        Record<string, { requestType: MessageTypeDefinition<unknown, unknown> }> | undefined;
      const method = loaded?.[methodName];
      if (method === undefined) throw new Error(`${codecs.path} is not in the gateway's .proto files`);
      return {
        path: codecs.path,
        label: `${serviceName.slice(serviceName.lastIndexOf('.') + 1)}/${methodName}`,
        requestStream: codecs.requestStream,
        responseStream: codecs.responseStream,
        request: shapeOf((method.requestType.type as DescriptorProto).name),
        codecs,
      };
    }),
  );
}
