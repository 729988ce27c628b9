import { crdJsonSchemas, kubeconformReadable, strictJsonSchema } from './kubernetes-schemas';

const SCALED_OBJECT_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  spec: {
    group: 'keda.sh',
    names: { kind: 'ScaledObject', plural: 'scaledobjects' },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              metadata: { type: 'object' },
              spec: {
                type: 'object',
                properties: {
                  maxReplicaCount: { type: 'integer', format: 'int32' },
                  fallback: { type: 'object', nullable: true, properties: { replicas: { type: 'integer' } } },
                  advanced: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true, properties: {} },
                  triggers: {
                    type: 'array',
                    items: {
                      type: 'object',
                      properties: { metadata: { type: 'object', additionalProperties: { type: 'string' } } },
                    },
                  },
                },
              },
            },
          },
        },
      },
      { name: 'v1alpha0', served: false, schema: { openAPIV3Schema: { type: 'object' } } },
    ],
  },
};

describe('custom resource schemas for kubeconform', () => {
  it('takes each served version of a CRD, named as kubeconform looks it up', () => {
    const schemas = crdJsonSchemas(SCALED_OBJECT_CRD);
    expect(schemas.map(({ group, kind, version }) => ({ group, kind, version }))).toEqual([
      { group: 'keda.sh', kind: 'scaledobject', version: 'v1alpha1' },
    ]);
  });

  it('refuses unknown fields where the CRD lists the properties, and nowhere it keeps unknown ones', () => {
    const [{ schema }] = crdJsonSchemas(SCALED_OBJECT_CRD);
    const spec = (schema as { properties: { spec: Record<string, unknown> } }).properties.spec;
    expect(spec.additionalProperties).toBe(false);
    const properties = spec.properties as Record<string, Record<string, unknown>>;
    expect(properties.advanced.additionalProperties).toBeUndefined();
    // A map's own additionalProperties schema is kept.
    const items = (properties.triggers.items as { properties: { metadata: Record<string, unknown> } })
      .properties.metadata;
    expect(items.additionalProperties).toEqual({ type: 'string' });
    // A property named like a keyword is a field, not a keyword.
    expect(strictJsonSchema({ properties: { properties: { type: 'string' } } })).toEqual({
      properties: { properties: { type: 'string' } },
      additionalProperties: false,
    });
  });

  it('admits null where the CRD says nullable', () => {
    const [{ schema }] = crdJsonSchemas(SCALED_OBJECT_CRD);
    const fallback = (schema as { properties: { spec: { properties: { fallback: { type: unknown } } } } })
      .properties.spec.properties.fallback;
    expect(fallback.type).toEqual(['object', 'null']);
  });

  it('refuses a document that is not a CRD, or a version without a schema', () => {
    expect(() => crdJsonSchemas({ kind: 'Deployment', spec: {} })).toThrow('not a CustomResourceDefinition');
    expect(() =>
      crdJsonSchemas({
        kind: 'CustomResourceDefinition',
        spec: { group: 'g', names: { kind: 'K' }, versions: [{ name: 'v1', served: true }] },
      }),
    ).toThrow('g/k v1 has no openAPIV3Schema');
  });
});

describe("kubernetes-validate's schemas for kubeconform", () => {
  it('drops the $id and points at the definitions beside the file', () => {
    const text = JSON.stringify({
      $id: 'https://kubernetes.io/api/service/v1',
      properties: { metadata: { $ref: '/api/_definitions.json#/$defs/io.k8s.ObjectMeta' } },
    });
    expect(JSON.parse(kubeconformReadable(text))).toEqual({
      properties: { metadata: { $ref: '_definitions.json#/$defs/io.k8s.ObjectMeta' } },
    });
    // References inside the definitions file stay as they are.
    expect(kubeconformReadable('{"a":{"$ref":"#/$defs/x"}}')).toBe('{"a":{"$ref":"#/$defs/x"}}');
  });
});
