/**
 * JSON schemas that kubeconform checks the Helm chart's manifests against, offline: the Kubernetes
 * API's (as the PyPI package kubernetes-validate ships them) and the custom resources' the chart
 * renders (from the CustomResourceDefinitions in the operators' own Go modules).
 */

/** A CustomResourceDefinition file from an operator's Go module, and the kinds wanted from it. */
export interface CrdSource {
  /** Go module path, e.g. github.com/kedacore/keda/v2. */
  readonly module: string;
  readonly version: string;
  /** Files inside the module, each one CustomResourceDefinition. */
  readonly files: readonly string[];
}

/**
 * The custom resources helm/sotto renders: ServiceMonitor and PrometheusRule (Prometheus
 * Operator), Certificate (cert-manager), ScaledObject and TriggerAuthentication (KEDA).
 */
export const CRD_SOURCES: readonly CrdSource[] = [
  {
    module: 'github.com/prometheus-operator/prometheus-operator',
    version: 'v0.85.0',
    files: [
      'example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml',
      'example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml',
    ],
  },
  {
    module: 'github.com/cert-manager/cert-manager',
    version: 'v1.21.2',
    files: ['deploy/crds/cert-manager.io_certificates.yaml'],
  },
  {
    module: 'github.com/kedacore/keda/v2',
    version: 'v2.21.0',
    files: [
      'config/crd/bases/keda.sh_scaledobjects.yaml',
      'config/crd/bases/keda.sh_triggerauthentications.yaml',
    ],
  },
];

/** kubernetes-validate's release, and the Kubernetes versions whose schemas are kept from it. */
export const KUBERNETES_VALIDATE_VERSION = '1.37.0';
export const KUBERNETES_SCHEMA_VERSIONS: readonly string[] = [
  '1.33.0',
  '1.34.0',
  '1.35.0',
  '1.36.0',
  '1.37.0',
];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * An OpenAPI v3 schema of a CRD as a strict JSON schema: an object that lists its properties and
 * does not say it keeps unknown fields refuses others (as the API server prunes them, and a
 * misspelt key would silently do nothing), and `nullable` admits null.
 */
export function strictJsonSchema(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(strictJsonSchema);
  if (!isObject(schema)) return schema;
  const out: Record<string, Json> = {};
  for (const [key, value] of Object.entries(schema)) {
    // The keys of `properties` are field names, not schema keywords: convert each schema under them.
    out[key] =
      key === 'properties' && isObject(value)
        ? Object.fromEntries(Object.entries(value).map(([name, sub]) => [name, strictJsonSchema(sub)]))
        : strictJsonSchema(value);
  }
  if (
    isObject(out.properties) &&
    out.additionalProperties === undefined &&
    out['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    out.additionalProperties = false;
  }
  if (out.nullable === true && typeof out.type === 'string') out.type = [out.type, 'null'];
  return out;
}

export interface CrdSchema {
  /** The API group, e.g. keda.sh. */
  readonly group: string;
  /** The kind in lower case, as kubeconform names schema files. */
  readonly kind: string;
  /** The API version within the group, e.g. v1alpha1. */
  readonly version: string;
  readonly schema: Json;
}

/**
 * Each served version's schema of a CustomResourceDefinition (as parsed from its YAML), where
 * kubeconform's `{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json` finds it.
 */
export function crdJsonSchemas(crd: unknown): CrdSchema[] {
  if (!isObject(crd) || crd.kind !== 'CustomResourceDefinition' || !isObject(crd.spec)) {
    throw new Error('not a CustomResourceDefinition');
  }
  const { group, names, versions } = crd.spec;
  if (typeof group !== 'string' || !isObject(names) || typeof names.kind !== 'string') {
    throw new Error('CustomResourceDefinition without spec.group or spec.names.kind');
  }
  const kind = names.kind.toLowerCase();
  if (!Array.isArray(versions)) throw new Error(`CustomResourceDefinition ${group}/${kind} has no versions`);
  return versions.flatMap((entry) => {
    if (!isObject(entry) || entry.served === false || typeof entry.name !== 'string') return [];
    const openApi = isObject(entry.schema) ? entry.schema.openAPIV3Schema : undefined;
    if (!isObject(openApi)) throw new Error(`${group}/${kind} ${entry.name} has no openAPIV3Schema`);
    return [{ group, kind, version: entry.name, schema: strictJsonSchema(openApi) }];
  });
}

/**
 * One of kubernetes-validate's schemas as kubeconform can read it from its file. The package
 * names each schema by an `$id` on kubernetes.io and points at the shared definitions as
 * `/api/_definitions.json#…`, resolved in its own registry; kubeconform resolves references against
 * the file, so the `$id` goes and the references become relative to the file's folder.
 */
export function kubeconformReadable(schemaText: string): string {
  const schema = JSON.parse(schemaText) as Json;
  if (isObject(schema)) delete schema.$id;
  return JSON.stringify(schema).split('"/api/_definitions.json#').join('"_definitions.json#');
}
