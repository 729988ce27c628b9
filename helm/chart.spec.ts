import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  calleesOf,
  callersOf,
  envelopesTopic,
  topologyDocument,
  type ServiceIdentity,
} from '@sotto/contracts';
import {
  helmTool,
  kubeconformSchemaLocations,
  kubeconformTool,
  KUBERNETES_SCHEMA_VERSIONS,
  testToolProblem,
} from '@sotto/local-infra';

// Lints and renders helm/sotto with the Helm that `npm test` builds (libs/local-infra), and checks
// what an SRE relies on once it is applied: who may talk to whom, where each service finds the
// others, that pods run locked down, probe, scale and roll on config changes.

const root = join(__dirname, '..');
const chart = join(root, 'helm', 'sotto');
const [HELM] = helmTool.command();
const [KUBECONFORM] = kubeconformTool.command();
const PRODUCTION = join(chart, 'values-production.yaml');
const RELEASE = 'rel';
const NAMESPACE = 'chat';

/**
 * The six services as README.md and DESIGN.md describe them: ports and secrets; who calls whom is
 * the topology the services enforce (@sotto/contracts).
 */
const PORTS_AND_SECRETS: Record<ServiceIdentity, { grpc: number; metrics: number; secrets: string[] }> = {
  gateway: { grpc: 7400, metrics: 9400, secrets: ['REDIS_URL'] },
  'prekey-directory': { grpc: 7401, metrics: 9401, secrets: ['DATABASE_URL', 'REDIS_URL'] },
  'message-relay': { grpc: 7402, metrics: 9402, secrets: ['REDIS_URL'] },
  presence: { grpc: 7403, metrics: 9403, secrets: ['REDIS_URL'] },
  'backup-store': { grpc: 7404, metrics: 9404, secrets: ['DATABASE_URL'] },
  'key-vault': { grpc: 7405, metrics: 9405, secrets: ['DATABASE_URL', 'REDIS_URL'] },
};
const SERVICES: Record<string, { grpc: number; metrics: number; calls: string[]; secrets: string[] }> =
  Object.fromEntries(
    Object.entries(PORTS_AND_SECRETS).map(([name, service]) => [
      name,
      { ...service, calls: calleesOf(name as ServiceIdentity) },
    ]),
  );
const NAMES = Object.keys(SERVICES);
const fullname = (service: string): string => `${RELEASE}-sotto-${service}`;
const envName = (service: string): string => `${service.toUpperCase().replace(/-/g, '_')}_ADDR`;

type Labels = Record<string, string>;
interface Metadata {
  name: string;
  namespace?: string;
  labels?: Labels;
  annotations?: Labels;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string };
    configMapKeyRef?: { name: string; key: string };
  };
}
interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  ports?: { name: string; containerPort: number }[];
  env?: EnvVar[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Labels; limits?: Labels };
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[] };
    seccompProfile?: { type: string };
  };
  volumeMounts?: VolumeMount[];
}
interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  containers: Container[];
  volumes?: {
    name: string;
    emptyDir?: object;
    persistentVolumeClaim?: { claimName: string };
    secret?: { secretName: string; defaultMode?: number };
    projected?: {
      defaultMode?: number;
      sources: { secret: { name: string; items: { key: string; path: string }[] } }[];
    };
  }[];
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  data?: Labels;
  spec?: unknown;
}
interface Deployment extends Manifest {
  spec: {
    replicas?: number;
    selector: { matchLabels: Labels };
    strategy?: { type: string };
    template: { metadata: Metadata; spec: PodSpec };
  };
}
interface Service extends Manifest {
  spec: {
    type: string;
    clusterIP?: string;
    selector: Labels;
    ports: { name: string; port: number; targetPort: string | number }[];
  };
}
interface PeerSelector {
  podSelector?: { matchLabels?: Labels };
  namespaceSelector?: object;
}
interface NetworkPolicy extends Manifest {
  spec: {
    podSelector: { matchLabels: Labels };
    policyTypes: string[];
    ingress: { ports: { port: string | number }[]; from?: PeerSelector[] }[];
    egress?: EgressRule[];
  };
}
interface EgressRule {
  ports: { port: string | number; protocol: string }[];
  to?: PeerSelector[];
}
interface Autoscaler extends Manifest {
  spec: { scaleTargetRef: { apiVersion: string; kind: string; name: string }; minReplicas: number };
}
interface DisruptionBudget extends Manifest {
  spec: { selector: { matchLabels: Labels } };
}
interface ServiceMonitor extends Manifest {
  spec: {
    selector: { matchLabels: Labels; matchExpressions?: { key: string; operator: string }[] };
    endpoints: { port: string; path: string }[];
  };
}
interface TestPod extends Manifest {
  spec: PodSpec;
}
interface Certificate extends Manifest {
  spec: {
    secretName: string;
    commonName?: string;
    duration: string;
    renewBefore: string;
    privateKey: { algorithm: string; size: number };
    uris?: string[];
    dnsNames?: string[];
    usages: string[];
    issuerRef: { name: string; kind: string; group: string };
  };
}

interface HelmResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

const checkedTools = new Set<string>();

/** Fails (never skips) when a test tool is missing or not the pinned version. */
function checkTool(tool: typeof helmTool): void {
  if (checkedTools.has(tool.name)) return;
  const problem = testToolProblem(tool);
  if (problem !== undefined) throw new Error(problem);
  checkedTools.add(tool.name);
}

/** Runs the project's Helm. */
function helm(args: string[]): HelmResult {
  checkTool(helmTool);
  const result = spawnSync(HELM, args, {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, HELM_NAMESPACE: '' },
  });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function setArgs(values: string[]): string[] {
  return values.flatMap((value) => ['--set', value]);
}

/** `helm template` of `chartDir` with these values files and --set values, as text. */
function renderText(values: string[] = [], files: string[] = [], chartDir = chart): string {
  const result = helm([
    'template',
    RELEASE,
    chartDir,
    '--namespace',
    NAMESPACE,
    ...files.flatMap((file) => ['-f', file]),
    ...setArgs(values),
  ]);
  if (result.status !== 0) throw new Error(`helm template failed:\n${result.stderr}`);
  return result.stdout;
}

/** `helm template` with these --set values (and values files), parsed; a failed render fails the test with Helm's words. */
function render(values: string[] = [], files: string[] = []): Manifest[] {
  return parseAllDocuments(renderText(values, files)).flatMap((doc) => {
    const value = doc.toJS() as Manifest | null;
    return value === null ? [] : [value];
  });
}

interface KubeconformResult {
  resources: { filename: string; kind: string; name: string; status: string; msg: string }[];
}

/**
 * kubeconform's verdict on each manifest of each named text (the name is each resource's
 * `filename`), strictly, against Kubernetes `version`, offline.
 */
function kubeconform(texts: Record<string, string>, version: string): KubeconformResult {
  checkTool(kubeconformTool);
  const dir = mkdtempSync(join(tmpdir(), 'sotto-kubeconform-'));
  try {
    const files = Object.entries(texts).map(([name, text]) => {
      const file = join(dir, `${name}.yaml`);
      writeFileSync(file, text);
      return file;
    });
    const result = spawnSync(
      KUBECONFORM,
      [
        '-strict',
        '-output',
        'json',
        '-verbose',
        '-kubernetes-version',
        version,
        ...kubeconformSchemaLocations().flatMap((location) => ['-schema-location', location]),
        ...files,
      ],
      { encoding: 'utf8' },
    );
    if (result.error) throw result.error;
    const parsed = JSON.parse(result.stdout) as KubeconformResult;
    for (const resource of parsed.resources) resource.filename = relative(dir, resource.filename);
    return parsed;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Files under `dir`, as paths relative to it. */
function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? listFiles(path).map((file) => `${name}/${file}`) : [name];
  });
}

/**
 * NOTES.txt as `helm install` would print it. `helm template` leaves NOTES.txt out, so a copy of
 * the chart renders it as a ConfigMap's data through a named template holding its text.
 */
function notes(values: string[], files: string[] = []): string {
  const copy = mkdtempSync(join(tmpdir(), 'sotto-chart-'));
  try {
    cpSync(chart, copy, { recursive: true });
    const text = readFileSync(join(chart, 'templates', 'NOTES.txt'), 'utf8');
    writeFileSync(join(copy, 'templates', '_notes.tpl'), `{{- define "notes" -}}\n${text}{{- end }}\n`);
    writeFileSync(
      join(copy, 'templates', 'notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n    {{- include "notes" . | nindent 4 }}\n',
    );
    const [doc] = parseAllDocuments(
      helm([
        'template',
        RELEASE,
        copy,
        '--namespace',
        NAMESPACE,
        '--show-only',
        'templates/notes.yaml',
        ...files.flatMap((file) => ['-f', file]),
        ...setArgs(values),
      ]).stdout,
    );
    return (doc.toJS() as { data: { notes: string } }).data.notes;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/** Every `sotto_…` metric name the services' source registers (string literals outside specs). */
function registeredMetricNames(): Set<string> {
  const names = new Set<string>();
  for (const top of ['apps', 'libs']) {
    for (const file of listFiles(join(root, top))) {
      if (!file.endsWith('.ts') || file.endsWith('.spec.ts') || file.includes('node_modules')) continue;
      if (relative(top, file).includes('generated')) continue;
      for (const match of readFileSync(join(root, top, file), 'utf8').matchAll(/'(sotto_[a-z_]+)'/g)) {
        names.add(match[1]);
      }
    }
  }
  return names;
}

/** The fields the tests read, for each kind they look into. */
interface Kinds {
  Deployment: Deployment;
  Service: Service;
  NetworkPolicy: NetworkPolicy;
  HorizontalPodAutoscaler: Autoscaler;
  PodDisruptionBudget: DisruptionBudget;
  ServiceMonitor: ServiceMonitor;
  Pod: TestPod;
  Certificate: Certificate;
}
type ManifestOf<K extends string> = K extends keyof Kinds ? Kinds[K] : Manifest;

function all<K extends string>(manifests: Manifest[], kind: K): ManifestOf<K>[] {
  return manifests.filter((m) => m.kind === kind) as ManifestOf<K>[];
}

function one<K extends string>(manifests: Manifest[], kind: K, name: string): ManifestOf<K> {
  const found = manifests.filter((m) => m.kind === kind && m.metadata.name === name);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name}, found ${found.length}`);
  return found[0] as ManifestOf<K>;
}

function selects(selector: Labels, labels: Labels | undefined): boolean {
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function container(manifests: Manifest[], service: string): Container {
  const pod = one(manifests, 'Deployment', fullname(service)).spec.template.spec;
  expect(pod.containers).toHaveLength(1);
  return pod.containers[0];
}

/** The environment a service's container starts with: its ConfigMap, then its env entries. */
function environment(manifests: Manifest[], service: string): Record<string, EnvVar> {
  const c = container(manifests, service);
  const env: Record<string, EnvVar> = {};
  for (const source of c.envFrom ?? []) {
    const name = source.configMapRef?.name;
    if (name === undefined) continue;
    for (const [key, value] of Object.entries(one(manifests, 'ConfigMap', name).data ?? {})) {
      env[key] = { name: key, value };
    }
  }
  for (const entry of c.env ?? []) env[entry.name] = entry;
  return env;
}

function value(env: Record<string, EnvVar>, name: string): string | undefined {
  return env[name]?.value;
}

/** Pods (by their Deployment) that a NetworkPolicy's peers select: our own services only. */
function admittedServices(manifests: Manifest[], peers: PeerSelector[] | undefined): string[] {
  return NAMES.filter((service) => {
    const labels = one(manifests, 'Deployment', fullname(service)).spec.template.metadata.labels;
    return (peers ?? []).some(
      (peer) => peer.namespaceSelector === undefined && selects(peer.podSelector?.matchLabels ?? {}, labels),
    );
  });
}

/** Sorted names in a Reloader annotation of a service's pods (`secret` or `configmap`). */
function reloaded(manifests: Manifest[], service: string, kind: 'secret' | 'configmap'): string[] {
  const annotations = one(manifests, 'Deployment', fullname(service)).spec.template.metadata.annotations;
  const list = annotations?.[`${kind}.reloader.stakater.com/reload`];
  return list === undefined ? [] : list.split(',').sort();
}

/**
 * Every Secret and ConfigMap a service's pod reads, from its spec as Kubernetes would: volumes,
 * env and envFrom. Its own ConfigMap is left out: checksum/config covers it.
 */
function consumed(manifests: Manifest[], service: string): { secrets: string[]; configMaps: string[] } {
  const pod = one(manifests, 'Deployment', fullname(service)).spec.template.spec;
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const volume of pod.volumes ?? []) {
    if (volume.secret) secrets.add(volume.secret.secretName);
    for (const source of volume.projected?.sources ?? []) secrets.add(source.secret.name);
  }
  for (const c of pod.containers) {
    for (const entry of c.env ?? []) {
      if (entry.valueFrom?.secretKeyRef) secrets.add(entry.valueFrom.secretKeyRef.name);
      if (entry.valueFrom?.configMapKeyRef) configMaps.add(entry.valueFrom.configMapKeyRef.name);
    }
    for (const source of c.envFrom ?? []) {
      if (source.secretRef) secrets.add(source.secretRef.name);
      if (source.configMapRef) configMaps.add(source.configMapRef.name);
    }
  }
  configMaps.delete(fullname(service));
  return { secrets: [...secrets].sort(), configMaps: [...configMaps].sort() };
}

/** The backup-store on an S3-compatible bucket, as for MinIO; credentials from the pod unless added. */
const S3 = [
  'backupStore.blobStorage.type=s3',
  'backupStore.blobStorage.s3.bucket=sotto-backups',
  'backupStore.blobStorage.s3.endpoint=https://minio.storage.svc:9000',
  'backupStore.blobStorage.s3.region=eu-central-1',
  'backupStore.blobStorage.s3.forcePathStyle=true',
  'backupStore.blobStorage.s3.partBytes=16777216',
  'backupStore.blobStorage.s3.bufferBytes=134217728',
  'backupStore.blobStorage.s3.bufferWaitSeconds=20',
];
const S3_KEYS = ['BACKUP_S3_ACCESS_KEY_ID', 'BACKUP_S3_SECRET_ACCESS_KEY'];

const BROKERS = 'kafka.brokers={kafka-0.kafka:9092,kafka-1.kafka:9092}';

/** Every optional feature of the chart on at once. */
const EVERYTHING = [
  'serviceMonitor.enabled=true',
  'prometheusRule.enabled=true',
  'tls.certManager.enabled=true',
  'tls.certManager.issuerRef.name=sotto-ca',
  'tls.certManager.issuerRef.kind=ClusterIssuer',
  'tls.gatewayPublic.existingSecret=chat-example-org',
  'postgres.tls.ca.existingSecret=rds-ca',
  'postgres.tls.clientCertificate.existingSecret=pg-client',
  'redis.tls.ca.existingSecret=redis-ca',
  'redis.tls.clientCertificate.certManager.enabled=true',
  'kafka.brokers={kafka-0.kafka:9093,kafka-1.kafka:9093}',
  'kafka.tls.enabled=true',
  'kafka.tls.ca.existingSecret=events-cluster-ca-cert',
  'kafka.tls.clientCertificate.existingSecret=sotto-relay',
  'messageRelay.autoscaling.enabled=false',
  'messageRelay.autoscaling.keda.enabled=true',
  ...S3,
  'backupStore.blobStorage.s3.existingSecret=s3-creds',
  'backupStore.autoscaling.enabled=true',
  'gateway.service.type=LoadBalancer',
  'gateway.service.nodePort=30400',
  'gateway.service.externalTrafficPolicy=Local',
  'gateway.service.loadBalancerSourceRanges={10.0.0.0/8}',
  'gateway.service.annotations.service\\.beta\\.kubernetes\\.io/aws-load-balancer-type=nlb',
  'gateway.autoscaling.targetMemoryUtilizationPercentage=80',
  'gateway.extraEnv[0].name=EXTRA_TOKEN',
  'gateway.extraEnv[0].valueFrom.secretKeyRef.name=gateway-extra',
  'gateway.extraEnv[0].valueFrom.secretKeyRef.key=token',
  'gateway.extraEnv[1].name=EXTRA_FLAG',
  'gateway.extraEnv[1].valueFrom.configMapKeyRef.name=gateway-flags',
  'gateway.extraEnv[1].valueFrom.configMapKeyRef.key=flag',
  'gateway.extraEnvFrom[0].secretRef.name=gateway-env',
  'gateway.extraEnvFrom[1].configMapRef.name=gateway-settings',
  'gateway.podAnnotations.team=edge',
  'gateway.podLabels.tier=edge',
  'gateway.nodeSelector.pool=edge',
  'gateway.tolerations[0].key=edge',
  'gateway.tolerations[0].operator=Exists',
  'gateway.topologySpreadConstraints[0].maxSkew=1',
  'gateway.topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone',
  'gateway.topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule',
  'gateway.topologySpreadConstraints[0].labelSelector.matchLabels.tier=edge',
  'networkPolicy.egress.hsm.ports={1792}',
  'networkPolicy.egress.extraRules[0].ports[0].port=4317',
  'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/sotto',
];

/** The backup-store's blobs on a kept volume, and cert-manager client certificates for storage. */
const LOCAL_BLOBS = [
  'backupStore.blobStorage.local.persistence.enabled=true',
  'backupStore.blobStorage.local.persistence.storageClass=fast',
  'tls.certManager.enabled=true',
  'tls.certManager.issuerRef.name=sotto-ca',
  'postgres.tls.clientCertificate.certManager.enabled=true',
  'kafka.tls.enabled=true',
  'kafka.tls.clientCertificate.certManager.enabled=true',
];

const OVERRIDES = [
  'serviceMonitor.enabled=true',
  'gateway.service.type=LoadBalancer',
  'kafka.brokers={kafka-0.kafka:9092,kafka-1.kafka:9092}',
  ...['gateway', 'prekeyDirectory', 'messageRelay', 'presence', 'backupStore', 'keyVault'].map(
    (key) => `${key}.autoscaling.enabled=false`,
  ),
];

describe('helm/sotto', () => {
  let defaults: Manifest[];
  let overridden: Manifest[];

  beforeAll(() => {
    defaults = render();
    overridden = render(OVERRIDES);
  });

  it('passes helm lint --strict with its defaults and with overrides', () => {
    for (const values of [[], OVERRIDES, S3]) {
      const result = helm(['lint', '--strict', chart, ...setArgs(values)]);
      expect({ status: result.status, output: result.stdout + result.stderr }).toEqual({
        status: 0,
        output: expect.stringContaining('1 chart(s) linted, 0 chart(s) failed'),
      });
    }
  });

  it('rejects values the schema forbids, in lint and in template, naming the value', () => {
    for (const bad of ['gateway.replicaCount=many', 'presence.replicacount=2', 'logLevel=loud']) {
      const lint = helm(['lint', '--strict', chart, '--set', bad]);
      const template = helm(['template', RELEASE, chart, '--set', bad]);
      expect(lint.status).not.toBe(0);
      expect(template.status).not.toBe(0);
      const key = bad.split('=')[0].split('.').pop() ?? bad;
      expect(template.stderr).toContain(key);
    }
  });

  it('refuses blob settings that would lose or scatter backups', () => {
    expect(helm(['template', RELEASE, chart, '--set', 'backupStore.replicaCount=3']).stderr).toContain(
      'emptyDir blob directory would scatter uploads',
    );
  });

  it('refuses S3 settings the backup-store would stop on, saying which value to set', () => {
    // The schema catches what it can express, so `helm lint` fails too; Helm's lint only logs a
    // template's `fail`, so the cross-value checks fail `helm template` and `helm install` alone.
    const refused = (values: string[], { lints = true } = {}): string => {
      const lint = helm(['lint', '--strict', chart, ...setArgs(values)]);
      const template = helm(['template', RELEASE, chart, ...setArgs(values)]);
      expect(lint.status === 0).toBe(!lints);
      expect(template.status).not.toBe(0);
      return template.stderr;
    };
    expect(refused(['backupStore.blobStorage.type=s3'])).toContain('/backupStore/blobStorage/s3/bucket');
    // The template says it in words where the schema is skipped.
    const unchecked = helm([
      'template',
      RELEASE,
      chart,
      '--skip-schema-validation',
      '--set',
      'backupStore.blobStorage.type=s3',
    ]);
    expect(unchecked.status).not.toBe(0);
    expect(unchecked.stderr).toContain(
      'backupStore.blobStorage.type=s3 needs backupStore.blobStorage.s3.bucket: the name of an existing bucket',
    );
    // 2 GiB in 10,000 parts of 5 MiB fits; 100 GiB does not.
    expect(
      refused(
        [...S3, 'backupStore.blobStorage.s3.partBytes=5242880', 'backupStore.quotaBytes=107374182400'],
        { lints: false },
      ),
    ).toContain('backupStore.blobStorage.s3.partBytes=5242880 is too small');
    // The buffer budget must hold one part's buffer: 16 MiB + 1 MiB - 1 bytes here.
    expect(refused([...S3, 'backupStore.blobStorage.s3.bufferBytes=16777216'], { lints: false })).toContain(
      "backupStore.blobStorage.s3.bufferBytes=16777216 cannot hold one part's buffer: set it to at least 17825791",
    );
    for (const [bad, key] of [
      ['backupStore.blobStorage.s3.partBytes=1048576', 'partBytes'],
      ['backupStore.blobStorage.s3.bufferBytes=1048576', 'bufferBytes'],
      ['backupStore.blobStorage.s3.bufferWaitSeconds=0', 'bufferWaitSeconds'],
      ['backupStore.blobStorage.s3.bufferWaitSeconds=86401', 'bufferWaitSeconds'],
      ['backupStore.blobStorage.s3.endpoint=minio:9000', 'endpoint'],
      ['backupStore.blobStorage.s3.bucket=s3://sotto-backups', 'bucket'],
      ['backupStore.blobStorage.s3.region=', 'region'],
      ['backupStore.blobStorage.s3.accessKeyIdKey=', 'accessKeyIdKey'],
    ]) {
      expect(refused([...S3, bad])).toContain(key);
    }
  });

  it('runs each of the six services in its own Deployment of the one image, selecting its main.js', () => {
    const deployments = all(defaults, 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual(NAMES.map(fullname).sort());
    for (const service of NAMES) {
      const c = container(defaults, service);
      expect(c.image).toBe('sotto:0.1.0');
      expect(c.args).toEqual([`dist/apps/${service}/apps/${service}/src/main.js`]);
      expect(one(defaults, 'Deployment', fullname(service)).metadata.namespace).toBe(NAMESPACE);
    }
  });

  it('runs every pod as uid 10001 on a read-only root filesystem with no capabilities', () => {
    const pods = [
      ...all(defaults, 'Deployment').map((d) => d.spec.template.spec),
      ...all(defaults, 'Pod').map((p) => p.spec),
    ];
    expect(pods).toHaveLength(7);
    for (const pod of pods) {
      expect(pod.securityContext).toMatchObject({
        runAsNonRoot: true,
        runAsUser: 10001,
        seccompProfile: { type: 'RuntimeDefault' },
      });
      for (const c of pod.containers) {
        expect(c.securityContext).toMatchObject({
          runAsNonRoot: true,
          readOnlyRootFilesystem: true,
          allowPrivilegeEscalation: false,
          capabilities: { drop: ['ALL'] },
          seccompProfile: { type: 'RuntimeDefault' },
        });
        expect(c.resources?.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.resources?.limits).toEqual(expect.objectContaining({ memory: expect.any(String) }));
      }
    }
  });

  it('probes liveness at /healthz and readiness at /readyz on the port METRICS_ADDR binds', () => {
    for (const [service, ports] of Object.entries(SERVICES)) {
      const c = container(defaults, service);
      const env = environment(defaults, service);
      expect(c.ports).toEqual([
        expect.objectContaining({ name: 'grpc', containerPort: ports.grpc }),
        expect.objectContaining({ name: 'metrics', containerPort: ports.metrics }),
      ]);
      expect(value(env, 'GRPC_ADDR')).toBe(`0.0.0.0:${ports.grpc}`);
      expect(value(env, 'METRICS_ADDR')).toBe(`0.0.0.0:${ports.metrics}`);
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
      expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    }
  });

  it("points every service at each upstream's Service and gRPC port, and at nothing else", () => {
    const pairs = NAMES.flatMap((service) =>
      NAMES.filter((name) => name !== service).map((upstream) => ({ service, upstream })),
    );
    const addressOf = ({ service, upstream }: { service: string; upstream: string }): string | undefined =>
      value(environment(defaults, service), envName(upstream));
    const calls = ({ service, upstream }: { service: string; upstream: string }): boolean =>
      SERVICES[service].calls.includes(upstream);
    expect(pairs.map((pair) => ({ ...pair, address: addressOf(pair) }))).toEqual(
      pairs.map((pair) => ({
        ...pair,
        address: calls(pair) ? `${fullname(pair.upstream)}:${SERVICES[pair.upstream].grpc}` : undefined,
      })),
    );
    // Each address leads somewhere: a Service of that name, on that port, to the upstream's pods.
    for (const pair of pairs.filter(calls)) {
      const [host, port] = (addressOf(pair) ?? '').split(':');
      const svc = one(defaults, 'Service', host);
      expect(svc.spec.ports).toContainEqual(
        expect.objectContaining({ name: 'grpc', port: Number(port), targetPort: 'grpc' }),
      );
      const upstreamPods = one(defaults, 'Deployment', fullname(pair.upstream)).spec.template.metadata;
      expect(selects(svc.spec.selector, upstreamPods.labels)).toBe(true);
      expect(NAMES.filter((other) => other !== pair.upstream).map((other) => fullname(other))).not.toContain(
        host,
      );
    }
  });

  it('takes DATABASE_URL and REDIS_URL only from Secrets the operator creates', () => {
    expect(all(defaults, 'Secret')).toEqual([]);
    const entries = NAMES.flatMap((service) =>
      ['DATABASE_URL', 'REDIS_URL'].map((name) => ({ service, name })),
    );
    expect(
      entries.map(({ service, name }) => ({ service, name, entry: environment(defaults, service)[name] })),
    ).toEqual(
      entries.map(({ service, name }) => ({
        service,
        name,
        entry: SERVICES[service].secrets.includes(name)
          ? {
              name,
              valueFrom: {
                secretKeyRef: {
                  name: `${RELEASE}-sotto-${name === 'DATABASE_URL' ? 'postgres' : 'redis'}`,
                  key: name,
                },
              },
            }
          : undefined,
      })),
    );
    const custom = render([
      'postgres.existingSecret=pg-creds',
      'redis.existingSecret=redis-creds,redis.urlKey=url',
    ]);
    expect(environment(custom, 'key-vault').DATABASE_URL.valueFrom?.secretKeyRef).toEqual({
      name: 'pg-creds',
      key: 'DATABASE_URL',
    });
    expect(environment(custom, 'key-vault').REDIS_URL.valueFrom?.secretKeyRef).toEqual({
      name: 'redis-creds',
      key: 'url',
    });
  });

  it('runs the services on a Redis Cluster with redis.clusterNodes: REDIS_CLUSTER_NODES, no Redis Secret', () => {
    const clustered = render([
      'redis.clusterNodes={redis-0.redis:6379,redis-1.redis:6379}',
      'redis.clusterTls=true',
    ]);
    const onCluster = NAMES.map((service) => {
      const env = environment(clustered, service);
      return [service, env.REDIS_URL, value(env, 'REDIS_CLUSTER_NODES'), value(env, 'REDIS_CLUSTER_TLS')];
    });
    expect(onCluster).toEqual(
      NAMES.map((service) =>
        SERVICES[service].secrets.includes('REDIS_URL')
          ? [service, undefined, 'redis-0.redis:6379,redis-1.redis:6379', 'on']
          : [service, undefined, undefined, undefined],
      ),
    );
    expect(environment(defaults, 'presence').REDIS_CLUSTER_NODES).toBeUndefined();
    const plaintext = environment(render(['redis.clusterNodes={redis-0.redis:6379}']), 'presence');
    expect(plaintext.REDIS_CLUSTER_TLS).toBeUndefined();
    const bad = helm(['template', RELEASE, chart, '--set', 'redis.clusterNodes={redis://redis-0:6379}']);
    expect(bad.status).not.toBe(0);
  });

  it('gives the key-vault its HSM: PKCS#11 settings in its ConfigMap, the PIN only from a Secret', () => {
    const env = environment(defaults, 'key-vault');
    expect(value(env, 'PKCS11_MODULE')).toMatch(/^\//);
    expect(value(env, 'PKCS11_TOKEN_LABEL')).toBe('sotto-vault');
    expect(value(env, 'PKCS11_KEY_LABEL')).toBe('sotto-vault-seal');
    expect(env.PKCS11_PIN).toEqual({
      name: 'PKCS11_PIN',
      valueFrom: { secretKeyRef: { name: `${RELEASE}-sotto-hsm`, key: 'PKCS11_PIN' } },
    });
    for (const service of NAMES.filter((name) => name !== 'key-vault')) {
      const other = environment(defaults, service);
      expect({ service, pkcs11: Object.keys(other).filter((name) => name.startsWith('PKCS11_')) }).toEqual({
        service,
        pkcs11: [],
      });
    }

    const custom = render([
      'keyVault.hsm.modulePath=/opt/vendor/lib/libvendorpkcs11.so',
      'keyVault.hsm.tokenLabel=prod-vault',
      'keyVault.hsm.existingSecret=hsm-creds,keyVault.hsm.pinKey=pin',
    ]);
    const customEnv = environment(custom, 'key-vault');
    expect(value(customEnv, 'PKCS11_MODULE')).toBe('/opt/vendor/lib/libvendorpkcs11.so');
    expect(value(customEnv, 'PKCS11_TOKEN_LABEL')).toBe('prod-vault');
    expect(customEnv.PKCS11_PIN.valueFrom?.secretKeyRef).toEqual({ name: 'hsm-creds', key: 'pin' });
    const relative = helm(['template', RELEASE, chart, '--set', 'keyVault.hsm.modulePath=libpkcs11.so']);
    expect(relative.status).not.toBe(0);
    expect(relative.stderr).toContain('modulePath');
  });

  it("gives the gateway its sealed-sender certificate and key only from a Secret, and the certificates' lifetime", () => {
    const env = environment(defaults, 'gateway');
    const fromSecret = (key: string, name = `${RELEASE}-sotto-sender-certificate`) => ({
      valueFrom: { secretKeyRef: { name, key } },
    });
    expect(env.SENDER_CERTIFICATE_SERVER_CERTIFICATE).toMatchObject(
      fromSecret('SENDER_CERTIFICATE_SERVER_CERTIFICATE'),
    );
    expect(env.SENDER_CERTIFICATE_SERVER_KEY).toMatchObject(fromSecret('SENDER_CERTIFICATE_SERVER_KEY'));
    // The default is the gateway's own (apps/gateway/src/sender-certificates/sender-certificate-env.ts).
    expect(value(env, 'SENDER_CERTIFICATE_TTL_MS')).toBe('86400000');
    for (const service of NAMES.filter((name) => name !== 'gateway')) {
      const other = environment(defaults, service);
      expect({
        service,
        sender: Object.keys(other).filter((name) => name.startsWith('SENDER_CERTIFICATE_')),
      }).toEqual({
        service,
        sender: [],
      });
    }

    const custom = environment(
      render([
        'gateway.senderCertificate.existingSecret=sealed,gateway.senderCertificate.certificateKey=cert',
        'gateway.senderCertificate.serverKeyKey=key,gateway.senderCertificate.ttlMs=3600000',
      ]),
      'gateway',
    );
    expect(custom.SENDER_CERTIFICATE_SERVER_CERTIFICATE).toMatchObject(fromSecret('cert', 'sealed'));
    expect(custom.SENDER_CERTIFICATE_SERVER_KEY).toMatchObject(fromSecret('key', 'sealed'));
    expect(value(custom, 'SENDER_CERTIFICATE_TTL_MS')).toBe('3600000');
    // Group sends' caps: the gateway's own defaults, and what is set.
    expect([value(env, 'MULTI_RECIPIENT_MAX_RECIPIENTS'), value(env, 'MULTI_RECIPIENT_MAX_BYTES')]).toEqual([
      '1000',
      '786432',
    ]);
    const group = environment(
      render(['gateway.multiRecipient.maxRecipients=200,gateway.multiRecipient.maxBytes=100000']),
      'gateway',
    );
    expect([
      value(group, 'MULTI_RECIPIENT_MAX_RECIPIENTS'),
      value(group, 'MULTI_RECIPIENT_MAX_BYTES'),
    ]).toEqual(['200', '100000']);
    const tooMany = helm(['template', RELEASE, chart, '--set', 'gateway.multiRecipient.maxRecipients=5001']);
    expect(tooMany.status).not.toBe(0);
    expect(tooMany.stderr).toContain('maxRecipients');
    const zero = helm(['template', RELEASE, chart, '--set', 'gateway.senderCertificate.ttlMs=0']);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toContain('ttlMs');
  });

  it('gives the message-relay its Kafka brokers, a replication factor of 3 and min.insync.replicas of 2', () => {
    const env = environment(overridden, 'message-relay');
    expect(value(env, 'KAFKA_BROKERS')).toBe('kafka-0.kafka:9092,kafka-1.kafka:9092');
    expect(value(environment(defaults, 'message-relay'), 'ENVELOPE_TOPIC_REPLICATION')).toBe('3');
    expect(value(environment(defaults, 'message-relay'), 'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS')).toBe('2');
    expect(value(env, 'ENVELOPE_TOPIC_PARTITIONS')).toBe('8');
    for (const service of NAMES.filter((name) => name !== 'message-relay')) {
      expect(environment(overridden, service).KAFKA_BROKERS).toBeUndefined();
    }
  });

  it("gives the message-relay its mailboxes' caps and expiry, and refuses a cap of zero", () => {
    const env = environment(defaults, 'message-relay');
    expect(value(env, 'MAILBOX_MAX_ENVELOPES')).toBe('50000');
    expect(value(env, 'MAILBOX_MAX_BYTES')).toBe('104857600');
    expect(value(env, 'MAILBOX_ENVELOPE_TTL_SECONDS')).toBe('2592000');
    const custom = environment(render(['messageRelay.mailbox.maxEnvelopes=1000']), 'message-relay');
    expect(value(custom, 'MAILBOX_MAX_ENVELOPES')).toBe('1000');
    const zero = helm(['template', RELEASE, chart, '--set', 'messageRelay.mailbox.maxBytes=0']);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toContain('maxBytes');
  });

  it('has the message-relay commit offsets only once mailbox writes are on disk on a master and a replica, unless told otherwise', () => {
    const env = environment(defaults, 'message-relay');
    expect(
      ['MAILBOX_DURABILITY', 'MAILBOX_DURABILITY_REPLICAS', 'MAILBOX_DURABILITY_TIMEOUT_MS'].map((n) =>
        value(env, n),
      ),
    ).toEqual(['replica-aof', '1', '1000']);
    const off = environment(render(['messageRelay.mailbox.durability.level=none']), 'message-relay');
    expect(value(off, 'MAILBOX_DURABILITY')).toBe('none');
    for (const service of NAMES.filter((name) => name !== 'message-relay')) {
      expect(environment(defaults, service).MAILBOX_DURABILITY).toBeUndefined();
    }
    const unknown = helm([
      'template',
      RELEASE,
      chart,
      '--set',
      'messageRelay.mailbox.durability.level=fsync',
    ]);
    expect(unknown.status).not.toBe(0);
    expect(unknown.stderr).toContain('level');
  });

  it('keeps backup blobs on a writable volume: an emptyDir by default, a kept PVC when asked', () => {
    const check = (manifests: Manifest[]): PodSpec['volumes'] => {
      const env = environment(manifests, 'backup-store');
      expect(value(env, 'BACKUP_QUOTA_BYTES')).toBe('2147483648');
      const pod = one(manifests, 'Deployment', fullname('backup-store')).spec.template.spec;
      const mount = pod.containers[0].volumeMounts?.find(
        (m) => m.mountPath === value(env, 'BACKUP_BLOB_DIR'),
      );
      expect(mount).toBeDefined();
      return pod.volumes?.filter((v) => v.name === mount?.name);
    };
    expect(check(defaults)).toEqual([{ name: 'blobs', emptyDir: { sizeLimit: '5Gi' } }]);

    const persistent = render(['backupStore.blobStorage.local.persistence.enabled=true']);
    const claim = one(persistent, 'PersistentVolumeClaim', `${fullname('backup-store')}-blobs`);
    expect(claim.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    expect(check(persistent)).toEqual([
      { name: 'blobs', persistentVolumeClaim: { claimName: claim.metadata.name } },
    ]);
  });

  it('keeps backup blobs in an S3 bucket when asked: settings in the ConfigMap, no blob volume', () => {
    // Persistence left on from a local setup is ignored: the bucket holds the blobs.
    const manifests = render([...S3, 'backupStore.blobStorage.local.persistence.enabled=true']);
    const env = environment(manifests, 'backup-store');
    expect(
      Object.fromEntries(
        Object.entries(env)
          .filter(([name]) => name.startsWith('BACKUP_'))
          .map(([name, entry]) => [name, entry.value]),
      ),
    ).toEqual({
      BACKUP_QUOTA_BYTES: '2147483648',
      BACKUP_VERSIONS_KEPT: '2',
      BACKUP_UPLOAD_EXPIRY_SECONDS: '604800',
      BACKUP_SWEEP_INTERVAL_SECONDS: '300',
      BACKUP_S3_BUCKET: 'sotto-backups',
      BACKUP_S3_ENDPOINT: 'https://minio.storage.svc:9000',
      BACKUP_S3_REGION: 'eu-central-1',
      BACKUP_S3_FORCE_PATH_STYLE: 'true',
      BACKUP_S3_PART_BYTES: '16777216',
      BACKUP_S3_BUFFER_BYTES: '134217728',
      BACKUP_S3_BUFFER_WAIT_SECONDS: '20',
    });
    // No key pair: the AWS SDK's default chain (IRSA, instance roles) supplies credentials.
    for (const name of S3_KEYS) expect(env[name]).toBeUndefined();
    expect(env.DATABASE_URL.valueFrom?.secretKeyRef?.name).toBe(`${RELEASE}-sotto-postgres`);

    const deployment = one(manifests, 'Deployment', fullname('backup-store'));
    const pod = deployment.spec.template.spec;
    expect(pod.volumes?.map((v) => v.name)).toEqual(['tmp', 'tls']);
    expect(pod.containers[0].volumeMounts?.map((m) => m.mountPath)).toEqual(['/tmp', '/etc/sotto/tls']);
    expect(all(manifests, 'PersistentVolumeClaim')).toEqual([]);
    expect(deployment.spec.strategy?.type).toBe('RollingUpdate');
    // Nothing else learns about the bucket.
    for (const service of NAMES.filter((name) => name !== 'backup-store')) {
      const other = environment(manifests, service);
      expect({ service, s3: Object.keys(other).filter((name) => name.startsWith('BACKUP_S3_')) }).toEqual({
        service,
        s3: [],
      });
    }
    // The store may be anywhere: its egress policy opens the endpoint's port to any address.
    const egress = one(manifests, 'NetworkPolicy', `${fullname('backup-store')}-egress`);
    expect(egress.spec.egress).toContainEqual({ ports: [{ port: 9000, protocol: 'TCP' }] });

    // AWS S3 itself: no endpoint, virtual-hosted requests, the default region, part size and buffer budget.
    const aws = environment(
      render(['backupStore.blobStorage.type=s3', 'backupStore.blobStorage.s3.bucket=b-1']),
      'backup-store',
    );
    expect(aws.BACKUP_S3_ENDPOINT).toBeUndefined();
    expect(aws.BACKUP_BLOB_DIR).toBeUndefined();
    expect(
      [
        aws.BACKUP_S3_REGION,
        aws.BACKUP_S3_FORCE_PATH_STYLE,
        aws.BACKUP_S3_PART_BYTES,
        aws.BACKUP_S3_BUFFER_BYTES,
        aws.BACKUP_S3_BUFFER_WAIT_SECONDS,
      ].map((e) => e.value),
    ).toEqual(['us-east-1', 'false', '8388608', '268435456', '30']);
  });

  it('takes the S3 key pair only from the Secret named, under the keys named', () => {
    const env = environment(
      render([...S3, 'backupStore.blobStorage.s3.existingSecret=s3-creds']),
      'backup-store',
    );
    expect(S3_KEYS.map((name) => env[name])).toEqual(
      S3_KEYS.map((name) => ({ name, valueFrom: { secretKeyRef: { name: 's3-creds', key: name } } })),
    );
    const custom = environment(
      render([
        ...S3,
        'backupStore.blobStorage.s3.existingSecret=minio-user',
        'backupStore.blobStorage.s3.accessKeyIdKey=accesskey',
        'backupStore.blobStorage.s3.secretAccessKeyKey=secretkey',
      ]),
      'backup-store',
    );
    expect(S3_KEYS.map((name) => custom[name].valueFrom?.secretKeyRef)).toEqual([
      { name: 'minio-user', key: 'accesskey' },
      { name: 'minio-user', key: 'secretkey' },
    ]);
    // The chart never holds the keys itself, and a Secret named for local blobs is not read.
    expect(all(render([...S3, 'backupStore.blobStorage.s3.existingSecret=s3-creds']), 'Secret')).toEqual([]);
    const local = environment(render(['backupStore.blobStorage.s3.existingSecret=s3-creds']), 'backup-store');
    for (const name of S3_KEYS) expect(local[name]).toBeUndefined();
    expect(value(local, 'BACKUP_BLOB_DIR')).toBe('/var/lib/sotto/blobs');
  });

  it('scales the backup-store freely on S3, which all its pods share', () => {
    const several = render([...S3, 'backupStore.replicaCount=3']);
    expect(one(several, 'Deployment', fullname('backup-store')).spec.replicas).toBe(3);
    const scaled = render([...S3, 'backupStore.autoscaling.enabled=true']);
    const hpa = one(scaled, 'HorizontalPodAutoscaler', fullname('backup-store'));
    expect(hpa.spec.scaleTargetRef.name).toBe(fullname('backup-store'));
    expect(one(scaled, 'Deployment', fullname('backup-store')).spec.replicas).toBeUndefined();
  });

  it("passes the backup-store's upload expiry and sweep interval, and the key-vault's login limits", () => {
    // The defaults are the services' own (apps/backup-store/src/env.ts, apps/key-vault/src/env.ts).
    const backup = environment(defaults, 'backup-store');
    expect(value(backup, 'BACKUP_UPLOAD_EXPIRY_SECONDS')).toBe(String(7 * 24 * 3600));
    expect(value(backup, 'BACKUP_SWEEP_INTERVAL_SECONDS')).toBe('300');
    const vault = environment(defaults, 'key-vault');
    expect(
      ['TTL_SECONDS', 'LIMIT_PER_ACCOUNT', 'LIMIT_PER_SOURCE', 'LIMIT_WINDOW_SECONDS'].map((name) =>
        value(vault, `VAULT_LOGIN_${name}`),
      ),
    ).toEqual(['60', '5', '30', '3600']);

    const custom = render([
      'backupStore.uploadExpirySeconds=86400,backupStore.sweepIntervalSeconds=60',
      'keyVault.login.ttlSeconds=30,keyVault.login.limitPerAccount=3',
      'keyVault.login.limitPerSource=100,keyVault.login.windowSeconds=900',
    ]);
    expect(value(environment(custom, 'backup-store'), 'BACKUP_UPLOAD_EXPIRY_SECONDS')).toBe('86400');
    expect(value(environment(custom, 'backup-store'), 'BACKUP_SWEEP_INTERVAL_SECONDS')).toBe('60');
    const customVault = environment(custom, 'key-vault');
    expect(
      ['TTL_SECONDS', 'LIMIT_PER_ACCOUNT', 'LIMIT_PER_SOURCE', 'LIMIT_WINDOW_SECONDS'].map((name) =>
        value(customVault, `VAULT_LOGIN_${name}`),
      ),
    ).toEqual(['30', '3', '100', '900']);
    const zero = helm(['template', RELEASE, chart, '--set', 'keyVault.login.limitPerAccount=0']);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toContain('limitPerAccount');
  });

  it("passes the gateway's authentication cache and failure limits", () => {
    // The defaults are the gateway's own (apps/gateway/src/env.ts).
    const names = [
      'AUTH_CACHE_TTL_MS',
      'AUTH_CACHE_MAX_ENTRIES',
      'AUTH_FAILURES_PER_SOURCE',
      'AUTH_FAILURES_PER_DEVICE',
      'AUTH_FAILURE_WINDOW_SECONDS',
    ];
    const gateway = environment(defaults, 'gateway');
    expect(names.map((name) => value(gateway, name))).toEqual(['30000', '100000', '20', '100', '60']);

    const custom = render([
      'gateway.auth.cacheTtlMs=5000,gateway.auth.cacheMaxEntries=1000',
      'gateway.auth.failures.perSource=5,gateway.auth.failures.perDevice=50',
      'gateway.auth.failures.windowSeconds=300',
    ]);
    expect(names.map((name) => value(environment(custom, 'gateway'), name))).toEqual([
      '5000',
      '1000',
      '5',
      '50',
      '300',
    ]);
    const zero = helm(['template', RELEASE, chart, '--set', 'gateway.auth.failures.perSource=0']);
    expect(zero.status).not.toBe(0);
    expect(zero.stderr).toContain('perSource');
  });

  it("passes the gateway's unidentified-access cache, 0 (off) included", () => {
    // The defaults are the gateway's own (apps/gateway/src/env.ts).
    const names = ['UNIDENTIFIED_ACCESS_CACHE_TTL_MS', 'UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS'];
    expect(names.map((name) => value(environment(defaults, 'gateway'), name))).toEqual(['30000', '100000']);
    const custom = render([
      'gateway.unidentifiedAccess.cacheTtlMs=0,gateway.unidentifiedAccess.cacheMaxAccounts=500',
    ]);
    expect(names.map((name) => value(environment(custom, 'gateway'), name))).toEqual(['0', '500']);
    const negative = helm(['template', RELEASE, chart, '--set', 'gateway.unidentifiedAccess.cacheTtlMs=-1']);
    expect(negative.status).not.toBe(0);
    expect(negative.stderr).toContain('cacheTtlMs');
  });

  it("passes the prekey-directory's device limit and link-code lifetime, and refuses a device limit past 127", () => {
    // The defaults are the directory's own (apps/prekey-directory/src/env.ts).
    const names = ['MAX_DEVICES_PER_ACCOUNT', 'LINK_TOKEN_TTL_SECONDS'];
    const directory = environment(defaults, 'prekey-directory');
    expect(names.map((name) => value(directory, name))).toEqual(['6', '600']);
    const custom = render(['prekeyDirectory.maxDevicesPerAccount=3,prekeyDirectory.linkTokenTtlSeconds=120']);
    expect(names.map((name) => value(environment(custom, 'prekey-directory'), name))).toEqual(['3', '120']);
    const tooMany = helm(['template', RELEASE, chart, '--set', 'prekeyDirectory.maxDevicesPerAccount=128']);
    expect(tooMany.status).not.toBe(0);
    expect(tooMany.stderr).toContain('maxDevicesPerAccount');
  });

  it("passes every rate limit to the service that applies it, with the services' own defaults", () => {
    // The defaults are the services' own (apps/gateway/src/env.ts, apps/prekey-directory/src/env.ts).
    const gatewayLimits = {
      RATE_LIMIT_REGISTER_PER_SOURCE: ['registerPerSource', '20/1h', '5/1d'],
      RATE_LIMIT_RECOVER_ACCOUNT_PER_SOURCE: ['recoverAccountPerSource', '10/1h', '3/1h'],
      RATE_LIMIT_SEND_PER_DEVICE: ['sendPerDevice', '60/1m', '120/2m'],
      RATE_LIMIT_SEND_PER_DESTINATION: ['sendPerDestination', '600/1m', '300/30s'],
      RATE_LIMIT_SEALED_SEND_PER_SOURCE: ['sealedSendPerSource', '300/1m', '100/1m'],
      RATE_LIMIT_SEALED_SEND_PER_DESTINATION: ['sealedSendPerDestination', '600/1m', '200/1m'],
      RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_SOURCE: ['multiRecipientSendPerSource', '120/1m', '60/1m'],
      RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_DESTINATION: [
        'multiRecipientSendPerDestination',
        '1200/1m',
        '600/1m',
      ],
      RATE_LIMIT_LOOKUP_USERNAME_PER_ACCOUNT: ['lookupUsernamePerAccount', '100/1h', '50/h'],
      RATE_LIMIT_LOOKUP_ACCOUNT_PER_ACCOUNT: ['lookupAccountPerAccount', '300/1h', '600/1h'],
      RATE_LIMIT_PREKEY_BUNDLES_PER_ACCOUNT: ['prekeyBundlesPerAccount', '200/1h', '100/1h'],
      RATE_LIMIT_CONNECT_PER_DEVICE: ['connectPerDevice', '30/1m', '10/10s'],
      RATE_LIMIT_OTHER_CALLS_PER_DEVICE: ['otherCallsPerDevice', '120/1m', '240/1m'],
      RATE_LIMIT_CREATE_LINK_PER_SOURCE: ['createLinkPerSource', '10/1h', '5/1h'],
      RATE_LIMIT_WAIT_FOR_LINK_PER_SOURCE: ['waitForLinkPerSource', '60/1h', '30/1h'],
      RATE_LIMIT_COMPLETE_LINK_PER_SOURCE: ['completeLinkPerSource', '10/1h', '4/1h'],
      RATE_LIMIT_APPROVE_LINK_PER_ACCOUNT: ['approveLinkPerAccount', '10/1h', '3/1h'],
      RATE_LIMIT_DEVICE_LISTS_PER_ACCOUNT: ['deviceListsPerAccount', '300/1h', '600/1h'],
    } as const;
    const directoryLimits = {
      PREKEY_FETCH_LIMIT: ['prekeyFetchesPerRequesterAndTarget', '60', '30'],
      PREKEY_FETCH_WINDOW_SECONDS: ['prekeyFetchWindowSeconds', '3600', '600'],
      RATE_LIMIT_ONE_TIME_PREKEYS_PER_DEVICE: ['oneTimePrekeysPerDevice', '50/1d', '100/1d'],
    } as const;
    const expected = (limits: Record<string, readonly [string, string, string]>, column: 1 | 2) =>
      Object.fromEntries(Object.entries(limits).map(([name, row]) => [name, row[column]]));
    const read = (manifests: Manifest[], service: string, names: string[]) =>
      Object.fromEntries(names.map((name) => [name, value(environment(manifests, service), name)]));

    expect(read(defaults, 'gateway', Object.keys(gatewayLimits))).toEqual(expected(gatewayLimits, 1));
    expect(read(defaults, 'prekey-directory', Object.keys(directoryLimits))).toEqual(
      expected(directoryLimits, 1),
    );
    for (const service of NAMES) {
      const on = ['gateway', 'prekey-directory', 'key-vault'].includes(service) ? 'on' : undefined;
      expect([service, value(environment(defaults, service), 'SOTTO_RATE_LIMITS')]).toEqual([service, on]);
    }

    const custom = render(
      [...Object.values(gatewayLimits), ...Object.values(directoryLimits)].map(
        ([key, , custom]) => `rateLimits.${key}=${custom}`,
      ),
    );
    expect(read(custom, 'gateway', Object.keys(gatewayLimits))).toEqual(expected(gatewayLimits, 2));
    expect(read(custom, 'prekey-directory', Object.keys(directoryLimits))).toEqual(
      expected(directoryLimits, 2),
    );

    // A rate the services would refuse at start-up is refused before anything reaches the cluster.
    for (const bad of ['60', '0/1m', '60/1w', '1.5/1m', '60 per minute']) {
      const refused = helm(['template', RELEASE, chart, '--set-string', `rateLimits.sendPerDevice=${bad}`]);
      expect([bad, refused.status]).not.toEqual([bad, 0]);
      expect(refused.stderr).toContain('sendPerDevice');
    }
  });

  it('refuses to turn the rate limits off unless rateLimits.allowOff says so', () => {
    const off = helm(['template', RELEASE, chart, '--set', 'rateLimits.enabled=false']);
    expect(off.status).not.toBe(0);
    expect(off.stderr).toContain('rateLimits.allowOff=true');
    // Nor through a service's extra environment.
    for (const key of ['gateway', 'prekeyDirectory', 'keyVault']) {
      const sneaked = helm([
        'template',
        RELEASE,
        chart,
        ...setArgs([`${key}.extraEnv[0].name=SOTTO_RATE_LIMITS`, `${key}.extraEnv[0].value=off`]),
      ]);
      expect([key, sneaked.status]).not.toEqual([key, 0]);
      expect(sneaked.stderr).toContain(`${key}.extraEnv sets SOTTO_RATE_LIMITS`);
    }

    const forced = render(['rateLimits.enabled=false', 'rateLimits.allowOff=true']);
    for (const service of ['gateway', 'prekey-directory', 'key-vault']) {
      expect([service, value(environment(forced, service), 'SOTTO_RATE_LIMITS')]).toEqual([service, 'off']);
    }
    // allowOff alone changes nothing.
    const allowed = render(['rateLimits.allowOff=true']);
    expect(value(environment(allowed, 'gateway'), 'SOTTO_RATE_LIMITS')).toBe('on');
  });

  it("passes the key-vault's waits between tries and its daily resets, and refuses a wrong list", () => {
    // The defaults are the service's own (apps/key-vault/src/records/try-spacing.ts, env.ts).
    const vault = environment(defaults, 'key-vault');
    expect(value(vault, 'KEY_VAULT_TRY_DELAYS')).toBe('3600,14400,43200,86400,86400,86400,86400');
    expect(value(vault, 'VAULT_RESET_LIMIT_PER_DAY')).toBe('1');

    // Whole numbers however large: a YAML number of a million or more must not become 1e+06.
    const custom = environment(
      render([
        'keyVault.login.tryDelaysSeconds={0,60,600,3600,1000000,31536000,0}',
        'keyVault.login.resetLimitPerDay=3',
      ]),
      'key-vault',
    );
    expect(value(custom, 'KEY_VAULT_TRY_DELAYS')).toBe('0,60,600,3600,1000000,31536000,0');
    expect(value(custom, 'VAULT_RESET_LIMIT_PER_DAY')).toBe('3');
    const none = environment(render(['keyVault.login.tryDelaysSeconds={0,0,0,0,0,0,0}']), 'key-vault');
    expect(value(none, 'KEY_VAULT_TRY_DELAYS')).toBe('0,0,0,0,0,0,0');

    for (const bad of ['{3600,14400}', '{1,2,3,4,5,6,-7}', '{1,2,3,4,5,6,7,8}']) {
      const refused = helm(['template', RELEASE, chart, '--set', `keyVault.login.tryDelaysSeconds=${bad}`]);
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toContain('tryDelaysSeconds');
    }
  });

  it('opens the gateway gRPC port to all, and each internal one only to the services that call it', () => {
    const policies = all(defaults, 'NetworkPolicy').filter((p) => p.spec.policyTypes.includes('Ingress'));
    expect(policies).toHaveLength(NAMES.length);
    for (const service of NAMES) {
      const pods = one(defaults, 'Deployment', fullname(service)).spec.template.metadata.labels;
      const mine = policies.filter((p) => selects(p.spec.podSelector.matchLabels, pods));
      expect(mine).toHaveLength(1);
      const [policy] = mine;
      expect(policy.spec.policyTypes).toEqual(['Ingress']);
      const grpcRules = policy.spec.ingress.filter((rule) => rule.ports.some((p) => p.port === 'grpc'));
      expect(grpcRules).toHaveLength(1);
      const callers = NAMES.filter((caller) => SERVICES[caller].calls.includes(service));
      // No `from` opens the port to all; a list admits exactly the callers, one peer each.
      const { from } = grpcRules[0];
      // The helm test pod asks internal services for their gRPC health, as the operator.
      const testPod = one(defaults, 'Pod', fullname('test')).metadata.labels;
      expect({
        service,
        openToAll: from === undefined,
        admitted: admittedServices(defaults, from),
        testPod: (from ?? []).some((peer) => selects(peer.podSelector?.matchLabels ?? {}, testPod)),
        peers: from?.length ?? 0,
      }).toEqual({
        service,
        openToAll: service === 'gateway',
        admitted: callers,
        testPod: service !== 'gateway',
        peers: service === 'gateway' ? 0 : callers.length + 1,
      });
      const metricsRule = policy.spec.ingress.find((rule) => rule.ports.some((p) => p.port === 'metrics'));
      expect(metricsRule?.from).toContainEqual({ podSelector: {} });
    }
  });

  it('rolls exactly the pods whose configuration changed (checksum/config)', () => {
    const checksums = (manifests: Manifest[]): Record<string, string | undefined> =>
      Object.fromEntries(
        NAMES.map((service) => [
          service,
          one(manifests, 'Deployment', fullname(service)).spec.template.metadata.annotations?.[
            'checksum/config'
          ],
        ]),
      );
    const before = checksums(defaults);
    for (const checksum of Object.values(before)) expect(checksum).toMatch(/^[0-9a-f]{64}$/);
    const after = checksums(render(['messageRelay.envelopeTopic.partitions=16']));
    expect(NAMES.filter((service) => before[service] !== after[service])).toEqual(['message-relay']);
    const louder = checksums(render(['logLevel=debug']));
    expect(NAMES.filter((service) => before[service] === louder[service])).toEqual([]);
    const s3 = checksums(render(S3));
    expect(NAMES.filter((service) => before[service] !== s3[service])).toEqual(['backup-store']);
    const bigParts = checksums(render([...S3, 'backupStore.blobStorage.s3.partBytes=33554432']));
    expect(NAMES.filter((service) => s3[service] !== bigParts[service])).toEqual(['backup-store']);
    const logins = checksums(render(['keyVault.login.limitPerSource=100']));
    expect(NAMES.filter((service) => before[service] !== logins[service])).toEqual(['key-vault']);
    const waits = checksums(render(['keyVault.login.tryDelaysSeconds={0,0,0,0,0,0,0}']));
    expect(NAMES.filter((service) => before[service] !== waits[service])).toEqual(['key-vault']);
  });

  it('autoscales with autoscaling/v2 HPAs that own the replica count, and not when disabled', () => {
    const hpas = all(defaults, 'HorizontalPodAutoscaler');
    // backup-store keeps one replica on its default emptyDir blob volume.
    const scaled = NAMES.filter((service) => service !== 'backup-store');
    expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual(scaled.map(fullname).sort());
    for (const hpa of hpas) {
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec.scaleTargetRef).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
      expect(one(defaults, 'Deployment', hpa.spec.scaleTargetRef.name).spec.replicas).toBeUndefined();
    }
    expect(one(defaults, 'Deployment', fullname('backup-store')).spec.replicas).toBe(1);

    expect(all(overridden, 'HorizontalPodAutoscaler')).toEqual([]);
    for (const service of NAMES) {
      expect(one(overridden, 'Deployment', fullname(service)).spec.replicas).toBeGreaterThanOrEqual(1);
    }
  });

  it('guards every service with a PodDisruptionBudget over its own pods', () => {
    const pdbs = all(defaults, 'PodDisruptionBudget');
    expect(pdbs).toHaveLength(NAMES.length);
    for (const service of NAMES) {
      const labels = one(defaults, 'Deployment', fullname(service)).spec.template.metadata.labels;
      expect(pdbs.filter((pdb) => selects(pdb.spec.selector.matchLabels, labels))).toHaveLength(1);
      expect(one(defaults, 'PodDisruptionBudget', fullname(service)).apiVersion).toBe('policy/v1');
    }
  });

  it('exposes gRPC and metrics on a ClusterIP Service per service; the gateway as a LoadBalancer on request', () => {
    for (const manifests of [defaults, overridden]) {
      for (const [service, ports] of Object.entries(SERVICES)) {
        const svc = one(manifests, 'Service', fullname(service));
        expect(svc.spec.ports.map(({ name, port, targetPort }) => ({ name, port, targetPort }))).toEqual([
          { name: 'grpc', port: ports.grpc, targetPort: 'grpc' },
          { name: 'metrics', port: ports.metrics, targetPort: 'metrics' },
        ]);
      }
    }
    const types = (manifests: Manifest[]): string[] =>
      NAMES.map((service) => one(manifests, 'Service', fullname(service)).spec.type);
    expect(types(defaults)).toEqual(NAMES.map(() => 'ClusterIP'));
    // Internal services are headless, so gRPC callers see every pod; the gateway keeps a virtual IP.
    const clusterIps = (manifests: Manifest[]): (string | undefined)[] =>
      NAMES.map((service) => one(manifests, 'Service', fullname(service)).spec.clusterIP);
    expect(clusterIps(defaults)).toEqual(
      NAMES.map((service) => (service === 'gateway' ? undefined : 'None')),
    );
    expect(types(overridden)).toEqual(
      NAMES.map((service) => (service === 'gateway' ? 'LoadBalancer' : 'ClusterIP')),
    );
  });

  it('scrapes /metrics of all six services through a ServiceMonitor only when enabled', () => {
    expect(all(defaults, 'ServiceMonitor')).toEqual([]);
    const [monitor, ...more] = all(overridden, 'ServiceMonitor');
    expect(more).toEqual([]);
    expect(monitor.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: 'metrics', path: '/metrics' })]);
    const scraped = all(overridden, 'Service').filter(
      (svc) =>
        selects(monitor.spec.selector.matchLabels, svc.metadata.labels) &&
        (monitor.spec.selector.matchExpressions ?? []).every(
          (e) => svc.metadata.labels?.[e.key] !== undefined,
        ),
    );
    expect(scraped.map((svc) => svc.metadata.name).sort()).toEqual(NAMES.map(fullname).sort());
  });

  it('alerts on rate-limit hits, full and filling mailboxes, failing drains, routing lag and latency and server errors, never by who, through a PrometheusRule only when enabled', () => {
    expect(all(defaults, 'PrometheusRule')).toEqual([]);
    const rendered = render([
      'prometheusRule.enabled=true',
      'prometheusRule.labels.release=kps',
      'prometheusRule.rateLimitHits.perSecond=2',
      'prometheusRule.rateLimitHits.for=30m',
    ]);
    const [rule, ...more] = all(rendered, 'PrometheusRule') as (Manifest & {
      spec: { groups: { name: string; rules: { alert: string; expr: string; for: string }[] }[] };
    })[];
    expect(more).toEqual([]);
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.metadata.namespace).toBe(NAMESPACE);
    expect(rule.metadata.labels?.release).toBe('kps');
    const rules = rule.spec.groups.flatMap((group) => group.rules);
    expect(rules).toEqual([
      expect.objectContaining({
        alert: 'SottoRateLimitHitsSustained',
        expr: `sum by (namespace, limit) (rate(sotto_rate_limit_hits_total{namespace="${NAMESPACE}"}[5m])) > 2`,
        for: '30m',
      }),
      expect.objectContaining({
        alert: 'SottoMailboxesFull',
        expr: `sum by (namespace, cap) (rate(sotto_mailbox_full_refusals_total{namespace="${NAMESPACE}"}[5m])) > 0.1`,
        for: '15m',
      }),
      expect.objectContaining({
        alert: 'SottoMailboxesFilling',
        expr:
          `(sum by (namespace) (rate(sotto_mailbox_depth_envelopes_count{namespace="${NAMESPACE}"}[15m]))` +
          ` - sum by (namespace) (rate(sotto_mailbox_depth_envelopes_bucket{namespace="${NAMESPACE}",le="25000"}[15m])))` +
          ` / sum by (namespace) (rate(sotto_mailbox_depth_envelopes_count{namespace="${NAMESPACE}"}[15m])) > 0.01`,
        for: '30m',
      }),
      expect.objectContaining({
        alert: 'SottoDeliveryDrainsFailing',
        expr: `max by (namespace, pod) (sotto_gateway_drain_failure_streak_max{namespace="${NAMESPACE}"}) >= 5`,
        for: '5m',
      }),
      expect.objectContaining({
        alert: 'SottoRelayConsumerLagHigh',
        expr: `max by (namespace) (sotto_relay_consumer_lag_messages{namespace="${NAMESPACE}"}) > 100000`,
        for: '10m',
      }),
      expect.objectContaining({
        alert: 'SottoRoutingSlow',
        expr: `histogram_quantile(0.99, sum by (namespace, le) (rate(sotto_relay_routing_delay_seconds_bucket{namespace="${NAMESPACE}"}[5m]))) > 2`,
        for: '10m',
      }),
      expect.objectContaining({
        alert: 'SottoServerErrors',
        expr:
          `sum by (namespace, service) (rate(sotto_grpc_server_handled_total{namespace="${NAMESPACE}",grpc_code=~"INTERNAL|UNKNOWN|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED"}[5m]))` +
          ` / sum by (namespace, service) (rate(sotto_grpc_server_handled_total{namespace="${NAMESPACE}"}[5m])) > 0.01`,
        for: '10m',
      }),
    ]);
    // Every series an alert reads is one a service registers.
    const exported = registeredMetricNames();
    for (const each of rules) {
      for (const series of each.expr.match(/sotto_[a-z_]+/g) ?? []) {
        const metric = series.replace(/_(bucket|count|sum)$/, '');
        expect({ alert: each.alert, metric, exported: exported.has(metric) }).toEqual({
          alert: each.alert,
          metric,
          exported: true,
        });
      }
    }
    // No alert groups or describes by who: only limits, caps and pods.
    for (const each of rules) expect(each.expr).not.toMatch(/account|device_id|address|source/);
    const refused = helm(['template', RELEASE, chart, '--set', 'prometheusRule.rateLimitHits.for=soon']);
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toContain('for');
  });

  it('ships a helm test hook that checks every gRPC health, as the operator, and every /readyz through their Services', () => {
    const [pod, ...more] = all(defaults, 'Pod');
    expect(more).toEqual([]);
    expect(pod.metadata.annotations?.['helm.sh/hook']).toBe('test');
    const c = pod.spec.containers[0];
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect((env.GRPC_TARGETS ?? '').split(/\s+/).sort()).toEqual(
      NAMES.map((service) => `${service}=${fullname(service)}:${SERVICES[service].grpc}`).sort(),
    );
    // It asks as the operator, whose certificate may call Health and reflection only.
    expect(pod.spec.volumes).toEqual([
      { name: 'tls', secret: { secretName: fullname('operator-tls'), defaultMode: 0o440 } },
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'tls', mountPath: '/etc/sotto/tls', readOnly: true }]);
    expect((env.READYZ_URLS ?? '').split(/\s+/).sort()).toEqual(
      NAMES.map((service) => `http://${fullname(service)}:${SERVICES[service].metrics}/readyz`).sort(),
    );
    expect(c.command?.slice(0, 2)).toEqual(['node', '-e']);
  });

  it('runs the pods as one ServiceAccount without an API token, or the one named', () => {
    const account = one(defaults, 'ServiceAccount', `${RELEASE}-sotto`);
    expect(account).toMatchObject({ apiVersion: 'v1', automountServiceAccountToken: false });
    for (const service of NAMES) {
      const pod = one(defaults, 'Deployment', fullname(service)).spec.template.spec;
      expect([service, pod.serviceAccountName, pod.automountServiceAccountToken]).toEqual([
        service,
        `${RELEASE}-sotto`,
        false,
      ]);
    }
    const irsa = render([
      'serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::1:role/sotto',
    ]);
    expect(one(irsa, 'ServiceAccount', `${RELEASE}-sotto`).metadata.annotations).toEqual({
      'eks.amazonaws.com/role-arn': 'arn:aws:iam::1:role/sotto',
    });
    const theirs = render(['serviceAccount.create=false', 'serviceAccount.name=platform']);
    expect(all(theirs, 'ServiceAccount')).toEqual([]);
    expect(one(theirs, 'Deployment', fullname('presence')).spec.template.spec.serviceAccountName).toBe(
      'platform',
    );
  });

  describe('at 100 billion messages a day', () => {
    let production: Manifest[];
    let everything: Manifest[];

    beforeAll(() => {
      production = render([], [PRODUCTION]);
      everything = render(EVERYTHING);
    });

    describe('offline validation against the Kubernetes API', () => {
      let renders: Record<string, string>;

      beforeAll(() => {
        renders = {
          defaults: renderText(),
          'values-production': renderText([], [PRODUCTION]),
          'every-optional-feature': renderText(EVERYTHING),
          'local-blobs-and-client-certificates': renderText(LOCAL_BLOBS),
        };
      });

      it.each(KUBERNETES_SCHEMA_VERSIONS)(
        'validates every render, strictly, against Kubernetes %s',
        (version) => {
          const { resources } = kubeconform(renders, version);
          expect(resources.filter((r) => r.status !== 'statusValid')).toEqual([]);
          for (const name of Object.keys(renders)) {
            const count = resources.filter((r) => r.filename === `${name}.yaml`).length;
            expect([name, count > NAMES.length * 4]).toEqual([name, true]);
          }
        },
      );

      it('checks the custom resources too, against their operators’ CRDs', () => {
        const { resources } = kubeconform(
          { everything: renders['every-optional-feature'] },
          KUBERNETES_SCHEMA_VERSIONS[0],
        );
        const kinds = new Set(resources.map((r) => r.kind));
        for (const kind of [
          'ServiceMonitor',
          'PrometheusRule',
          'Certificate',
          'ScaledObject',
          'TriggerAuthentication',
        ]) {
          expect([kind, kinds.has(kind)]).toEqual([kind, true]);
        }
      });

      it('would catch a misspelt field, a wrong type or an unknown kind, in core and custom resources', () => {
        const broken = renders['every-optional-feature']
          .replace('maxUnavailable: 0\n', 'maxUnavailabel: 0\n')
          .replace('cooldownPeriod: 300', 'cooldownPeriode: 300')
          .replace('severity: critical', 'severity: 3')
          .concat('\n---\napiVersion: sotto.dev/v1\nkind: Mailbox\nmetadata:\n  name: nobody\n');
        const notValid = kubeconform({ broken }, KUBERNETES_SCHEMA_VERSIONS[0]).resources.filter(
          (r) => r.status !== 'statusValid',
        );
        expect(notValid.map((r) => `${r.kind} ${r.status}`).sort()).toEqual(
          [
            'Deployment statusInvalid',
            'Mailbox statusError',
            'PrometheusRule statusInvalid',
            'ScaledObject statusInvalid',
          ].sort(),
        );
        expect(notValid.find((r) => r.kind === 'Deployment')?.msg).toContain("'maxUnavailabel' not allowed");
        expect(notValid.find((r) => r.kind === 'ScaledObject')?.msg).toContain(
          "'cooldownPeriode' not allowed",
        );
      });
    });

    describe('each template', () => {
      /** Every file under templates/, each with the test that breaks when it does. */
      const COVERED: Record<string, string> = {
        'NOTES.txt': 'prints how to reach the gateway, what to create, and what restricts and scales it',
        '_helpers.tpl': 'every test (names, labels, configuration, Secrets)',
        'certificate.yaml': 'has cert-manager issue short-lived ECDSA certificates naming each identity',
        'configmap.yaml': "points every service at each upstream's Service and gRPC port",
        'deployment.yaml': 'runs each of the six services in its own Deployment',
        'hpa.yaml': 'autoscales with autoscaling/v2 HPAs that own the replica count',
        'networkpolicy-egress.yaml':
          'lets each service reach only DNS, the services it calls and its storage',
        'networkpolicy.yaml':
          'opens the gateway gRPC port to all, and each internal one only to the services that call it',
        'pdb.yaml': 'guards every service with a PodDisruptionBudget over its own pods',
        'prometheusrule.yaml': 'alerts on rate-limit hits, full and filling mailboxes',
        'pvc.yaml': 'keeps backup blobs on a writable volume',
        'scaledobject.yaml': "scales the relay with KEDA on its consumer group's lag",
        'service.yaml': 'exposes gRPC and metrics on a ClusterIP Service per service',
        'serviceaccount.yaml': 'runs the pods as one ServiceAccount without an API token',
        'servicemonitor.yaml': 'scrapes /metrics of all six services through a ServiceMonitor',
        'tests/test-health.yaml': 'ships a helm test hook that checks every gRPC health',
      };

      it('has a test, and renders in some tested configuration', () => {
        const files = listFiles(join(chart, 'templates')).sort();
        expect(files).toEqual(Object.keys(COVERED).sort());
        const spec = readFileSync(__filename, 'utf8');
        for (const [file, title] of Object.entries(COVERED)) {
          if (file === '_helpers.tpl') continue;
          expect([file, spec.includes(`it('${title}`) || spec.includes(`it("${title}`)]).toEqual([
            file,
            true,
          ]);
        }
        const rendered = new Set(
          [renderText(EVERYTHING), renderText(LOCAL_BLOBS)].flatMap((text) =>
            [...text.matchAll(/^# Source: sotto\/templates\/(.+)$/gm)].map((m) => m[1]),
          ),
        );
        for (const file of files.filter((f) => !f.startsWith('_') && f !== 'NOTES.txt')) {
          expect([file, rendered.has(file)]).toEqual([file, true]);
        }
      });

      it('prints how to reach the gateway, what to create, and what restricts and scales it', () => {
        const defaultsNotes = notes([]);
        expect(defaultsNotes).toContain(
          `kubectl -n ${NAMESPACE} port-forward service/${fullname('gateway')} 7400:7400`,
        );
        expect(defaultsNotes).toContain(`create secret generic ${RELEASE}-sotto-postgres`);
        expect(defaultsNotes).toContain('Egress is restricted');
        expect(defaultsNotes).toContain('Redis 6379, PostgreSQL 5432');
        expect(defaultsNotes).not.toContain('KEDA');
        const productionNotes = notes([], [PRODUCTION]);
        expect(productionNotes).toContain('KEDA scales the message-relay from 60 to 256 pods');
        expect(productionNotes).toContain('its egress NetworkPolicy allows 443');
        expect(notes(['networkPolicy.egress.enabled=false'])).not.toContain('Egress is restricted');
      });
    });

    describe('KEDA', () => {
      const KEDA = [
        'messageRelay.autoscaling.enabled=false',
        'messageRelay.autoscaling.keda.enabled=true',
        BROKERS,
      ];
      interface ScaledObject extends Manifest {
        spec: {
          scaleTargetRef: { apiVersion: string; kind: string; name: string };
          minReplicaCount: number;
          maxReplicaCount: number;
          triggers: {
            type: string;
            metadata: Record<string, string>;
            metricType?: string;
            authenticationRef?: { name: string };
          }[];
        };
      }
      const scaledObject = (manifests: Manifest[]): ScaledObject =>
        one(manifests, 'ScaledObject', fullname('message-relay')) as ScaledObject;
      const refused = (values: string[]): string => {
        const result = helm(['template', RELEASE, chart, ...setArgs(values)]);
        expect(result.status).not.toBe(0);
        return result.stderr;
      };

      it("scales the relay with KEDA on its consumer group's lag, instead of the CPU HPA", () => {
        expect(all(defaults, 'ScaledObject')).toEqual([]);
        const manifests = render([...KEDA, 'messageRelay.autoscaling.keda.lagThreshold=2500']);
        const scaled = scaledObject(manifests);
        expect(scaled.apiVersion).toBe('keda.sh/v1alpha1');
        expect(scaled.spec.scaleTargetRef).toEqual({
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: fullname('message-relay'),
        });
        expect([scaled.spec.minReplicaCount, scaled.spec.maxReplicaCount]).toEqual([2, 8]);
        const [kafka, cpu, ...more] = scaled.spec.triggers;
        expect(more).toEqual([]);
        // The group the relay consumes as, the topic it logs to: the same values the relay is given.
        const env = environment(manifests, 'message-relay');
        expect(kafka).toEqual({
          type: 'kafka',
          metadata: {
            bootstrapServers: value(env, 'KAFKA_BROKERS'),
            consumerGroup: value(env, 'KAFKA_CONSUMER_GROUP'),
            topic: envelopesTopic.TOPIC,
            lagThreshold: '2500',
            activationLagThreshold: '0',
            offsetResetPolicy: 'earliest',
            allowIdleConsumers: 'false',
          },
        });
        expect(value(env, 'KAFKA_CONSUMER_GROUP')).toBe('sotto-message-relay');
        expect(cpu).toEqual({ type: 'cpu', metricType: 'Utilization', metadata: { value: '70' } });
        // KEDA owns the relay's HPA and its replicas; the other services keep theirs.
        expect(
          all(manifests, 'HorizontalPodAutoscaler')
            .map((h) => h.spec.scaleTargetRef.name)
            .sort(),
        ).toEqual(
          NAMES.filter((n) => !['message-relay', 'backup-store'].includes(n))
            .map(fullname)
            .sort(),
        );
        expect(one(manifests, 'Deployment', fullname('message-relay')).spec.replicas).toBeUndefined();
        // Lag only, when asked.
        const lagOnly = scaledObject(
          render([...KEDA, 'messageRelay.autoscaling.keda.cpuUtilizationPercentage=null']),
        );
        expect(lagOnly.spec.triggers.map((t) => t.type)).toEqual(['kafka']);
        // Another group: the relay and KEDA follow it together.
        const renamed = render([...KEDA, 'messageRelay.consumerGroup=relay-blue']);
        expect(scaledObject(renamed).spec.triggers[0].metadata.consumerGroup).toBe('relay-blue');
        expect(value(environment(renamed, 'message-relay'), 'KAFKA_CONSUMER_GROUP')).toBe('relay-blue');
      });

      it('never scales the relay past the partitions: one consumer each', () => {
        const atPartitions = render([
          ...KEDA,
          'messageRelay.envelopeTopic.partitions=32',
          'messageRelay.autoscaling.keda.maxReplicaCount=32',
        ]);
        expect(scaledObject(atPartitions).spec.maxReplicaCount).toBe(32);
        expect(refused([...KEDA, 'messageRelay.autoscaling.keda.maxReplicaCount=9'])).toContain(
          'messageRelay.autoscaling.keda.maxReplicaCount=9 exceeds messageRelay.envelopeTopic.partitions=8: each partition is consumed by one relay pod, so pods beyond 8 would route nothing',
        );
        expect(
          refused([
            ...KEDA,
            'messageRelay.envelopeTopic.partitions=4',
            'messageRelay.autoscaling.keda.maxReplicaCount=8',
          ]),
        ).toContain('lower maxReplicaCount to at most 4');
        expect(
          refused([
            ...KEDA,
            'messageRelay.autoscaling.keda.minReplicaCount=6',
            'messageRelay.autoscaling.keda.maxReplicaCount=4',
          ]),
        ).toContain('minReplicaCount=6 is above maxReplicaCount=4');
      });

      it('refuses the CPU HPA and KEDA together, and KEDA without brokers, saying what to set', () => {
        expect(refused(['messageRelay.autoscaling.keda.enabled=true', BROKERS])).toContain(
          'messageRelay.autoscaling.keda.enabled and messageRelay.autoscaling.enabled are mutually exclusive',
        );
        expect(
          refused(['messageRelay.autoscaling.enabled=false', 'messageRelay.autoscaling.keda.enabled=true']),
        ).toContain('messageRelay.autoscaling.keda.enabled needs kafka.brokers');
        for (const bad of ['lagThreshold=0', 'maxReplicaCount=0', 'pollingInterval=0', 'lagThreshold=many']) {
          const key = bad.split('=')[0];
          expect(refused([...KEDA, `messageRelay.autoscaling.keda.${bad}`])).toContain(key);
        }
        expect(refused([...KEDA, 'messageRelay.consumerGroup=two words'])).toContain('consumerGroup');
      });

      it("reaches TLS brokers as the relay does, with the relay's CA and client certificate", () => {
        const manifests = render([
          ...KEDA,
          'kafka.tls.enabled=true',
          'kafka.tls.ca.existingSecret=events-cluster-ca-cert',
          'kafka.tls.clientCertificate.existingSecret=sotto-relay',
          'kafka.tls.clientCertificate.certKey=user.crt',
          'kafka.tls.clientCertificate.keyKey=user.key',
        ]);
        const [kafka] = scaledObject(manifests).spec.triggers;
        expect(kafka.metadata.tls).toBe('enable');
        expect(kafka.authenticationRef).toEqual({ name: `${fullname('message-relay')}-kafka` });
        const auth = one(
          manifests,
          'TriggerAuthentication',
          `${fullname('message-relay')}-kafka`,
        ) as Manifest & {
          spec: { secretTargetRef: { parameter: string; name: string; key: string }[] };
        };
        expect(auth.spec.secretTargetRef).toEqual([
          { parameter: 'ca', name: 'events-cluster-ca-cert', key: 'ca.crt' },
          { parameter: 'cert', name: 'sotto-relay', key: 'user.crt' },
          { parameter: 'key', name: 'sotto-relay', key: 'user.key' },
        ]);
        // The same Secrets the relay mounts.
        expect(consumed(manifests, 'message-relay').secrets).toEqual(
          expect.arrayContaining(['events-cluster-ca-cert', 'sotto-relay']),
        );
        expect(all(render(KEDA), 'TriggerAuthentication')).toEqual([]);
      });
    });

    describe('egress', () => {
      const egressOf = (manifests: Manifest[], service: string): NetworkPolicy => {
        const labels = one(manifests, 'Deployment', fullname(service)).spec.template.metadata.labels;
        const mine = all(manifests, 'NetworkPolicy').filter(
          (p) => p.spec.policyTypes.includes('Egress') && selects(p.spec.podSelector.matchLabels, labels),
        );
        expect(mine.map((p) => p.metadata.name)).toEqual([`${fullname(service)}-egress`]);
        expect(mine[0].spec.policyTypes).toEqual(['Egress']);
        return mine[0];
      };
      /** TCP ports a service may reach at any address (rules without peers), sorted. */
      const openPorts = (policy: NetworkPolicy): number[] =>
        (policy.spec.egress ?? [])
          .filter((rule) => rule.to === undefined)
          .flatMap((rule) => rule.ports.map((p) => Number(p.port)))
          .sort((a, b) => a - b);
      /** The services (of ours) a policy lets a pod reach, each with the ports. */
      const reachableServices = (manifests: Manifest[], policy: NetworkPolicy): Record<string, number[]> =>
        Object.fromEntries(
          NAMES.flatMap((service) => {
            const labels = one(manifests, 'Deployment', fullname(service)).spec.template.metadata.labels;
            const ports = (policy.spec.egress ?? [])
              .filter((rule) =>
                (rule.to ?? []).some(
                  (peer) =>
                    peer.namespaceSelector === undefined &&
                    peer.podSelector !== undefined &&
                    selects(peer.podSelector.matchLabels ?? {}, labels),
                ),
              )
              .flatMap((rule) => rule.ports.map((p) => Number(p.port)));
            return ports.length > 0 ? [[service, ports]] : [];
          }),
        );

      it('lets each service reach only DNS, the services it calls and its storage', () => {
        const users = {
          redis: ['gateway', 'prekey-directory', 'message-relay', 'presence', 'key-vault'],
          postgres: ['prekey-directory', 'backup-store', 'key-vault'],
        };
        for (const service of NAMES) {
          const policy = egressOf(defaults, service);
          // Every rule names its ports: none opens everything.
          for (const rule of policy.spec.egress ?? []) expect(rule.ports.length).toBeGreaterThan(0);
          const [dns] = policy.spec.egress ?? [];
          expect(dns).toEqual({
            ports: [
              { port: 53, protocol: 'UDP' },
              { port: 53, protocol: 'TCP' },
            ],
            to: [
              {
                namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
                podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
              },
            ],
          });
          expect({ service, reaches: reachableServices(defaults, policy) }).toEqual({
            service,
            reaches: Object.fromEntries(
              SERVICES[service].calls.map((callee) => [callee, [SERVICES[callee].grpc]]),
            ),
          });
          const expected = [
            ...(users.redis.includes(service) ? [6379] : []),
            ...(users.postgres.includes(service) ? [5432] : []),
          ].sort((a, b) => a - b);
          expect({ service, open: openPorts(policy) }).toEqual({ service, open: expected });
        }
      });

      it("reaches Kafka on its brokers' ports, the S3 store on its endpoint's, an HSM and more only when named", () => {
        const manifests = render([
          'kafka.brokers={kafka-0.kafka:9093,[fd00::1]:9094}',
          ...S3,
          'networkPolicy.egress.hsm.ports={1792}',
          'networkPolicy.egress.postgres.to[0].ipBlock.cidr=10.20.0.0/16',
        ]);
        expect(openPorts(egressOf(manifests, 'message-relay'))).toEqual([6379, 9093, 9094]);
        expect(openPorts(egressOf(manifests, 'backup-store'))).toEqual([9000]);
        expect(egressOf(manifests, 'backup-store').spec.egress).toContainEqual({
          ports: [{ port: 5432, protocol: 'TCP' }],
          to: [{ ipBlock: { cidr: '10.20.0.0/16' } }],
        });
        expect(openPorts(egressOf(manifests, 'key-vault'))).toEqual([1792, 6379]);
        for (const service of NAMES.filter(
          (n) => !['message-relay', 'backup-store', 'key-vault'].includes(n),
        )) {
          expect(
            openPorts(egressOf(manifests, service)).filter((p) => [9093, 9094, 9000, 1792].includes(p)),
          ).toEqual([]);
        }
        // AWS S3 itself, and ports named outright.
        const aws = render(['backupStore.blobStorage.type=s3', 'backupStore.blobStorage.s3.bucket=b-1']);
        expect(openPorts(egressOf(aws, 'backup-store'))).toEqual([443, 5432]);
        const named = render([
          BROKERS,
          'networkPolicy.egress.kafka.ports={9095}',
          'networkPolicy.egress.redis.ports={6380}',
        ]);
        expect(openPorts(egressOf(named, 'message-relay'))).toEqual([6380, 9095]);
        // Extra rules go to every service.
        const extra = render(['networkPolicy.egress.extraRules[0].ports[0].port=4317']);
        for (const service of NAMES) {
          expect(egressOf(extra, service).spec.egress).toContainEqual({ ports: [{ port: 4317 }] });
        }
      });

      it('leaves egress open only when asked', () => {
        const policies = (values: string[]) =>
          all(render(values), 'NetworkPolicy').filter((p) => p.spec.policyTypes.includes('Egress'));
        expect(policies(['networkPolicy.egress.enabled=false'])).toEqual([]);
        expect(policies(['networkPolicy.enabled=false'])).toEqual([]);
      });
    });

    describe('rolling on Secrets and ConfigMaps', () => {
      it('watches every Secret and ConfigMap each pod reads, and only those', () => {
        for (const [name, manifests] of [
          ['defaults', defaults],
          ['production', production],
          ['everything', everything],
        ] as const) {
          for (const service of NAMES) {
            const reads = consumed(manifests, service);
            expect({ name, service, secrets: reloaded(manifests, service, 'secret') }).toEqual({
              name,
              service,
              secrets: reads.secrets,
            });
            expect({ name, service, configMaps: reloaded(manifests, service, 'configmap') }).toEqual({
              name,
              service,
              configMaps: reads.configMaps,
            });
            const annotations = one(manifests, 'Deployment', fullname(service)).spec.template.metadata
              .annotations;
            expect(annotations?.['checksum/secrets']).toMatch(/^[0-9a-f]{64}$/);
            expect(annotations?.['checksum/configmaps'] !== undefined).toBe(reads.configMaps.length > 0);
          }
        }
        // The gateway in EVERYTHING reads a Secret and a ConfigMap of the operator's through extraEnv.
        expect(consumed(everything, 'gateway')).toEqual({
          secrets: expect.arrayContaining(['gateway-extra', 'gateway-env']) as string[],
          configMaps: ['gateway-flags', 'gateway-settings'],
        });
      });

      it('rolls exactly the pods that read a Secret when it is swapped for another', () => {
        const podTemplates = (manifests: Manifest[]): Record<string, string> =>
          Object.fromEntries(
            NAMES.map((s) => [s, JSON.stringify(one(manifests, 'Deployment', fullname(s)).spec.template)]),
          );
        const before = podTemplates(defaults);
        const changed = (values: string[]): string[] => {
          const after = podTemplates(render(values));
          return NAMES.filter((s) => before[s] !== after[s]);
        };
        expect(changed(['postgres.existingSecret=pg-2'])).toEqual([
          'prekey-directory',
          'backup-store',
          'key-vault',
        ]);
        expect(changed(['keyVault.hsm.existingSecret=hsm-2'])).toEqual(['key-vault']);
        expect(changed(['redis.tls.ca.existingSecret=redis-ca'])).toEqual(
          NAMES.filter((s) => s !== 'backup-store'),
        );
      });
    });

    describe('values-production.yaml', () => {
      it('passes helm lint --strict and renders', () => {
        const result = helm(['lint', '--strict', chart, '-f', PRODUCTION]);
        expect(result.stdout + result.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
      });

      it('keeps the envelope log at replication 3 with min.insync.replicas 2, over 256 partitions', () => {
        const env = environment(production, 'message-relay');
        expect(
          [
            'ENVELOPE_TOPIC_PARTITIONS',
            'ENVELOPE_TOPIC_REPLICATION',
            'ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS',
          ].map((n) => value(env, n)),
        ).toEqual(['256', '3', '2']);
      });

      it('scales the relay with KEDA up to one pod per partition, and every other service with an HPA', () => {
        const scaled = one(production, 'ScaledObject', fullname('message-relay')) as Manifest & {
          spec: { maxReplicaCount: number; minReplicaCount: number };
        };
        expect(scaled.spec.maxReplicaCount).toBe(
          Number(value(environment(production, 'message-relay'), 'ENVELOPE_TOPIC_PARTITIONS')),
        );
        expect(
          all(production, 'HorizontalPodAutoscaler')
            .map((h) => h.spec.scaleTargetRef.name)
            .sort(),
        ).toEqual(
          NAMES.filter((n) => n !== 'message-relay')
            .map(fullname)
            .sort(),
        );
      });

      it('guards every service with a PDB and sizes every container', () => {
        expect(all(production, 'PodDisruptionBudget')).toHaveLength(NAMES.length);
        for (const service of NAMES) {
          const { resources } = container(production, service);
          expect(resources?.requests).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
          expect(resources?.limits).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        }
        // The gateway holds 20,000 streams at the measured 14,589 B each plus its 350 MiB empty
        // process at its memory target (75%) of its request, and a pod before its heap trim (26,898 B
        // a stream, 424 MiB empty) within its limit.
        const MiB = 1024 * 1024;
        const bytes = (quantity: string | undefined): number => {
          const match = /^(\d+)(Mi|Gi)$/.exec(quantity ?? '');
          if (!match) throw new Error(`not a Mi or Gi quantity: ${quantity}`);
          return Number(match[1]) * (match[2] === 'Gi' ? 1024 * MiB : MiB);
        };
        const { requests, limits } = container(production, 'gateway').resources ?? {};
        expect(20_000 * 14_589 + 350 * MiB).toBeLessThanOrEqual(0.75 * bytes(requests?.memory));
        expect(20_000 * 26_898 + 424 * MiB).toBeLessThanOrEqual(bytes(limits?.memory));
      });

      it('turns TLS, the rate limits, egress policies and the alerts on', () => {
        expect(value(environment(production, 'message-relay'), 'KAFKA_SECURITY_PROTOCOL')).toBe('SSL');
        expect(all(production, 'Certificate').length).toBeGreaterThanOrEqual(NAMES.length + 1);
        expect(value(environment(production, 'gateway'), 'GRPC_PUBLIC_TLS_CERT')).toBe(
          '/etc/sotto/public-tls/tls.crt',
        );
        for (const service of ['gateway', 'prekey-directory', 'key-vault']) {
          expect([service, value(environment(production, service), 'SOTTO_RATE_LIMITS')]).toEqual([
            service,
            'on',
          ]);
        }
        expect(all(production, 'NetworkPolicy')).toHaveLength(NAMES.length * 2);
        expect(all(production, 'PrometheusRule')).toHaveLength(1);
        expect(all(production, 'ServiceMonitor')).toHaveLength(1);
      });

      it('says where each number comes from', () => {
        const text = readFileSync(PRODUCTION, 'utf8');
        for (const figure of [
          '375 µs',
          '400 µs',
          '14,589 B',
          '20 KiB',
          'one relay consumer per partition',
          'min.insync.replicas',
        ]) {
          expect(text.toLowerCase()).toContain(figure.toLowerCase());
        }
      });
    });
  });

  describe('TLS', () => {
    const CERT_MANAGER = [
      'tls.certManager.enabled=true',
      'tls.certManager.issuerRef.name=sotto-ca',
      'tls.certManager.issuerRef.kind=ClusterIssuer',
    ];
    const secretVolumes = (manifests: Manifest[], service: string): string[] =>
      (one(manifests, 'Deployment', fullname(service)).spec.template.spec.volumes ?? []).flatMap((volume) =>
        volume.secret ? [volume.secret.secretName] : [],
      );

    it('writes topology.json from the table the services enforce', () => {
      const file = JSON.parse(readFileSync(join(chart, 'topology.json'), 'utf8')) as unknown;
      // If this fails, the table changed: npx nx run helm-chart:topology
      expect(file).toEqual(JSON.parse(JSON.stringify(topologyDocument())));
      for (const service of NAMES as ServiceIdentity[]) {
        expect(topologyDocument().services[service].callers).toEqual(callersOf(service));
      }
    });

    it('mounts in each pod its own certificate Secret only, read-only, where GRPC_TLS_* point', () => {
      for (const service of NAMES) {
        expect([service, secretVolumes(defaults, service)]).toEqual([service, [fullname(`${service}-tls`)]]);
        const c = container(defaults, service);
        expect(c.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/sotto/tls', readOnly: true });
        const env = environment(defaults, service);
        expect([value(env, 'GRPC_TLS_CERT'), value(env, 'GRPC_TLS_KEY'), value(env, 'GRPC_TLS_CA')]).toEqual([
          '/etc/sotto/tls/tls.crt',
          '/etc/sotto/tls/tls.key',
          '/etc/sotto/tls/ca.crt',
        ]);
        expect(value(env, 'GRPC_PUBLIC_TLS_CERT')).toBeUndefined();
      }
    });

    it('gives the gateway a public certificate of its own when asked, and no one else', () => {
      const manifests = render(['tls.gatewayPublic.existingSecret=chat-example-org']);
      expect(secretVolumes(manifests, 'gateway')).toEqual([fullname('gateway-tls'), 'chat-example-org']);
      const env = environment(manifests, 'gateway');
      expect([value(env, 'GRPC_PUBLIC_TLS_CERT'), value(env, 'GRPC_PUBLIC_TLS_KEY')]).toEqual([
        '/etc/sotto/public-tls/tls.crt',
        '/etc/sotto/public-tls/tls.key',
      ]);
      for (const service of NAMES.filter((name) => name !== 'gateway')) {
        expect(secretVolumes(manifests, service)).toEqual([fullname(`${service}-tls`)]);
      }
      // The test pod cannot check a certificate from a public CA under the Service's name: only the others.
      const [pod] = all(manifests, 'Pod');
      const targets = (pod.spec.containers[0].env ?? []).find((e) => e.name === 'GRPC_TARGETS')?.value ?? '';
      expect(
        targets
          .split(/\s+/)
          .filter(Boolean)
          .map((target) => target.split('=')[0]),
      ).toEqual(expect.not.arrayContaining(['gateway']));
    });

    it('rolls pods when their Secrets change: a checksum for helm upgrade, and Reloader when installed', () => {
      for (const service of NAMES) {
        const annotations = one(defaults, 'Deployment', fullname(service)).spec.template.metadata.annotations;
        expect(annotations?.['checksum/secrets']).toMatch(/^[0-9a-f]{64}$/);
        expect(reloaded(defaults, service, 'secret')).toEqual(consumed(defaults, service).secrets);
        expect(reloaded(defaults, service, 'secret')).toContain(fullname(`${service}-tls`));
      }
      const publicGateway = render(['tls.gatewayPublic.existingSecret=chat-example-org']);
      expect(reloaded(publicGateway, 'gateway', 'secret')).toEqual(
        [
          fullname('gateway-tls'),
          'chat-example-org',
          `${RELEASE}-sotto-redis`,
          `${RELEASE}-sotto-sender-certificate`,
        ].sort(),
      );
      const without = render(['tls.reloader=false']);
      for (const service of NAMES) {
        const annotations = one(without, 'Deployment', fullname(service)).spec.template.metadata.annotations;
        expect(annotations).not.toHaveProperty(['secret.reloader.stakater.com/reload']);
        expect(annotations?.['checksum/secrets']).toMatch(/^[0-9a-f]{64}$/);
      }
    });

    it('creates no Certificate unless cert-manager is enabled', () => {
      expect(all(defaults, 'Certificate')).toEqual([]);
    });

    it('has cert-manager issue short-lived ECDSA certificates naming each identity, into the Secrets the pods mount', () => {
      const manifests = render(CERT_MANAGER);
      const result = helm(['lint', '--strict', chart, ...setArgs(CERT_MANAGER)]);
      expect(result.status).toBe(0);
      const certificates = all(manifests, 'Certificate');
      expect(certificates.map((c) => c.metadata.name).sort()).toEqual(
        [...NAMES, 'operator'].map((name) => fullname(`${name}-tls`)).sort(),
      );
      for (const service of NAMES) {
        const certificate = one(manifests, 'Certificate', fullname(`${service}-tls`));
        expect(certificate.apiVersion).toBe('cert-manager.io/v1');
        expect(certificate.spec).toEqual({
          secretName: fullname(`${service}-tls`),
          duration: '168h',
          renewBefore: '48h',
          privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
          uris: [`spiffe://sotto/${service}`],
          dnsNames: [
            fullname(service),
            `${fullname(service)}.${NAMESPACE}.svc`,
            `${fullname(service)}.${NAMESPACE}.svc.cluster.local`,
          ],
          usages: ['digital signature', 'server auth', 'client auth'],
          issuerRef: { name: 'sotto-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
        });
        expect(secretVolumes(manifests, service)).toEqual([certificate.spec.secretName]);
      }
      const operator = one(manifests, 'Certificate', fullname('operator-tls'));
      expect(operator.spec).toMatchObject({
        uris: ['spiffe://sotto/operator'],
        usages: ['digital signature', 'client auth'],
      });
      expect(operator.spec.dnsNames).toBeUndefined();
    });

    it('refuses cert-manager without an issuer', () => {
      const result = helm(['template', RELEASE, chart, '--set', 'tls.certManager.enabled=true']);
      expect(result.status).not.toBe(0);
      expect(result.stderr).toContain('issuerRef');
    });

    describe('to Kafka, Redis and PostgreSQL', () => {
      /** Each server's env prefix, and the services that use it. */
      const SERVERS = {
        postgres: { prefix: 'DATABASE', users: ['prekey-directory', 'backup-store', 'key-vault'] },
        redis: {
          prefix: 'REDIS',
          users: ['gateway', 'prekey-directory', 'message-relay', 'presence', 'key-vault'],
        },
        kafka: { prefix: 'KAFKA', users: ['message-relay'] },
      } as const;
      type Server = keyof typeof SERVERS;
      const FROM_SECRETS = [
        'postgres.tls.ca.existingSecret=rds-ca',
        'postgres.tls.ca.key=global-bundle.pem',
        'postgres.tls.clientCertificate.existingSecret=pg-client',
        'redis.tls.ca.existingSecret=redis-ca',
        'kafka.brokers={kafka-bootstrap.kafka:9093}',
        'kafka.tls.enabled=true',
        'kafka.tls.ca.existingSecret=events-cluster-ca-cert',
        'kafka.tls.clientCertificate.existingSecret=sotto-relay',
        'kafka.tls.clientCertificate.certKey=user.crt',
        'kafka.tls.clientCertificate.keyKey=user.key',
      ];
      const TLS_ENV = /^(DATABASE|REDIS|KAFKA)_TLS_|^KAFKA_SECURITY_PROTOCOL$/;
      const storageEnv = (manifests: Manifest[], service: string): Record<string, string | undefined> =>
        Object.fromEntries(
          Object.entries(environment(manifests, service))
            .filter(([name]) => TLS_ENV.test(name))
            .map(([name, entry]) => [name, entry.value]),
        );
      const volume = (manifests: Manifest[], service: string, server: Server) =>
        (one(manifests, 'Deployment', fullname(service)).spec.template.spec.volumes ?? []).find(
          (v) => v.name === `${server}-tls`,
        );

      it('sets nothing by default: plaintext, or TLS against the system roots as the URL says', () => {
        for (const service of NAMES) {
          expect([service, storageEnv(defaults, service)]).toEqual([service, {}]);
          for (const server of Object.keys(SERVERS) as Server[]) {
            expect(volume(defaults, service, server)).toBeUndefined();
          }
        }
      });

      it('mounts each CA and client certificate from its Secret, read-only, in the pods that use the server, where *_TLS_* point', () => {
        const manifests = render(FROM_SECRETS);
        expect(helm(['lint', '--strict', chart, ...setArgs(FROM_SECRETS)]).status).toBe(0);
        for (const service of NAMES) {
          const expected: Record<string, string> = {};
          for (const [server, { prefix, users }] of Object.entries(SERVERS)) {
            if (!(users as readonly string[]).includes(service)) continue;
            expected[`${prefix}_TLS_CA`] = `/etc/sotto/${server}-tls/ca.crt`;
            if (server !== 'redis') {
              expected[`${prefix}_TLS_CERT`] = `/etc/sotto/${server}-tls/tls.crt`;
              expected[`${prefix}_TLS_KEY`] = `/etc/sotto/${server}-tls/tls.key`;
            }
          }
          if (service === 'message-relay') expected['KAFKA_SECURITY_PROTOCOL'] = 'SSL';
          expect([service, storageEnv(manifests, service)]).toEqual([service, expected]);
          const mounts = container(manifests, service).volumeMounts ?? [];
          for (const [server, { users }] of Object.entries(SERVERS) as [
            Server,
            { users: readonly string[] },
          ][]) {
            const mount = mounts.find((m) => m.name === `${server}-tls`);
            expect([service, server, mount]).toEqual([
              service,
              server,
              users.includes(service)
                ? { name: `${server}-tls`, mountPath: `/etc/sotto/${server}-tls`, readOnly: true }
                : undefined,
            ]);
          }
        }
        expect(volume(manifests, 'key-vault', 'postgres')?.projected).toEqual({
          defaultMode: 0o440,
          sources: [
            { secret: { name: 'rds-ca', items: [{ key: 'global-bundle.pem', path: 'ca.crt' }] } },
            {
              secret: {
                name: 'pg-client',
                items: [
                  { key: 'tls.crt', path: 'tls.crt' },
                  { key: 'tls.key', path: 'tls.key' },
                ],
              },
            },
          ],
        });
        expect(volume(manifests, 'message-relay', 'kafka')?.projected?.sources).toEqual([
          { secret: { name: 'events-cluster-ca-cert', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          {
            secret: {
              name: 'sotto-relay',
              items: [
                { key: 'user.crt', path: 'tls.crt' },
                { key: 'user.key', path: 'tls.key' },
              ],
            },
          },
        ]);
      });

      it('rolls the pods that mount a storage Secret when it changes, and only those', () => {
        const manifests = render(FROM_SECRETS);
        const reload = (service: string): string[] => reloaded(manifests, service, 'secret');
        const redisUrl = `${RELEASE}-sotto-redis`;
        const postgresUrl = `${RELEASE}-sotto-postgres`;
        expect(reload('message-relay')).toEqual(
          [
            fullname('message-relay-tls'),
            'redis-ca',
            'events-cluster-ca-cert',
            'sotto-relay',
            redisUrl,
          ].sort(),
        );
        expect(reload('backup-store')).toEqual(
          [fullname('backup-store-tls'), 'pg-client', 'rds-ca', postgresUrl].sort(),
        );
        expect(reload('presence')).toEqual([fullname('presence-tls'), 'redis-ca', redisUrl].sort());
        // A CA and a client certificate in one Secret are watched once.
        const shared = render([
          'redis.tls.ca.existingSecret=redis-tls',
          'redis.tls.clientCertificate.existingSecret=redis-tls',
        ]);
        expect(reloaded(shared, 'presence', 'secret')).toEqual(
          [fullname('presence-tls'), 'redis-tls', redisUrl].sort(),
        );
        // helm upgrade hashes the Secrets' contents (it can look them up; helm template cannot).
        expect(
          one(manifests, 'Deployment', fullname('presence')).spec.template.metadata.annotations?.[
            'checksum/secrets'
          ],
        ).toMatch(/^[0-9a-f]{64}$/);
      });

      it('has cert-manager issue client certificates naming the user, into the Secrets the pods mount', () => {
        const values = [
          ...CERT_MANAGER,
          'postgres.tls.clientCertificate.certManager.enabled=true',
          'kafka.tls.enabled=true',
          'kafka.tls.clientCertificate.certManager.enabled=true',
          'kafka.tls.clientCertificate.certManager.commonName=sotto-relay',
          'kafka.tls.clientCertificate.certManager.issuerRef.name=kafka-clients-ca',
        ];
        const manifests = render(values);
        expect(helm(['lint', '--strict', chart, ...setArgs(values)]).status).toBe(0);
        expect(one(manifests, 'Certificate', fullname('postgres-client-tls')).spec).toEqual({
          secretName: fullname('postgres-client-tls'),
          commonName: 'sotto',
          duration: '168h',
          renewBefore: '48h',
          privateKey: { algorithm: 'ECDSA', size: 256, rotationPolicy: 'Always' },
          usages: ['digital signature', 'client auth'],
          issuerRef: { name: 'sotto-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
        });
        expect(one(manifests, 'Certificate', fullname('kafka-client-tls')).spec).toMatchObject({
          commonName: 'sotto-relay',
          issuerRef: { name: 'kafka-clients-ca', kind: 'Issuer', group: 'cert-manager.io' },
        });
        expect(all(manifests, 'Certificate').filter((c) => c.metadata.name.includes('redis'))).toEqual([]);
        expect(storageEnv(manifests, 'backup-store')).toEqual({
          DATABASE_TLS_CERT: '/etc/sotto/postgres-tls/tls.crt',
          DATABASE_TLS_KEY: '/etc/sotto/postgres-tls/tls.key',
        });
        expect(volume(manifests, 'message-relay', 'kafka')?.projected?.sources).toEqual([
          {
            secret: {
              name: fullname('kafka-client-tls'),
              items: [
                { key: 'tls.crt', path: 'tls.crt' },
                { key: 'tls.key', path: 'tls.key' },
              ],
            },
          },
        ]);
      });

      it('refuses settings the services would stop on or ignore, naming the values', () => {
        const refused = (values: string[]): string => {
          const result = helm(['template', RELEASE, chart, ...setArgs(values)]);
          expect(result.status).not.toBe(0);
          return result.stderr;
        };
        expect(refused(['kafka.tls.ca.existingSecret=events-ca'])).toContain(
          'kafka.tls.ca and kafka.tls.clientCertificate are read only over TLS: set kafka.tls.enabled=true',
        );
        expect(refused(['redis.tls.clientCertificate.certManager.enabled=true'])).toContain(
          'redis.tls.clientCertificate.certManager.enabled needs an issuer',
        );
        expect(refused(['postgres.tls.ca.key='])).toContain("at '/postgres/tls/ca/key': minLength");
        expect(refused(['redis.tls.ca.secret=x'])).toContain(
          "at '/redis/tls/ca': additional properties 'secret' not allowed",
        );
        expect(refused(['kafka.tls.clientCertificate.certManager.commonName=' + 'x'.repeat(65)])).toContain(
          "at '/kafka/tls/clientCertificate/certManager/commonName': maxLength",
        );
      });
    });
  });
});
