import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  CRD_SOURCES,
  crdJsonSchemas,
  KUBERNETES_SCHEMA_VERSIONS,
  KUBERNETES_VALIDATE_VERSION,
  kubeconformReadable,
} from './kubernetes-schemas';
import { repoRoot } from './repo-root';
import { installDebianPackages } from './system-packages';
import { run, which } from './system';
import type { Logger } from './types';

/**
 * Programs that some test suites run and no Debian package provides at the version they need:
 * Helm, which the chart suite (helm/chart.spec.ts) lints and renders with, kubeconform and the
 * Kubernetes API schemas it checks the rendered chart against, and moto's S3-compatible server,
 * which the backup-store's S3 suite stores blobs in. `npm test` installs them once under
 * .sotto/tools and reuses them while the installed version is the pinned one.
 */
export interface TestTool {
  readonly name: string;
  /** The pinned version; any other installed version is replaced. */
  readonly version: string;
  /**
   * Folders, from the repository root, whose specs run the tool: a Jest run that selects no test
   * in them does not install it.
   */
  readonly usedBy: readonly string[];
  /** The command line that runs the tool, before its own arguments. */
  readonly command: () => [string, ...string[]];
  /** The version installed now, or undefined when there is none that runs. */
  readonly installedVersion: () => string | undefined;
  readonly install: (logger: Logger) => Promise<void>;
}

export const HELM_VERSION = 'v3.22.0';
export const MOTO_VERSION = '5.2.5';
export const KUBECONFORM_VERSION = 'v0.7.0';
const HELM_MODULE = 'helm.sh/helm/v3';
const KUBECONFORM_MODULE = 'github.com/yannh/kubeconform';

function toolsDir(): string {
  return join(repoRoot(), '.sotto', 'tools');
}

/** A command's trimmed stdout when it exits 0; undefined when it fails or cannot start. */
function answer(command: string, args: string[]): string | undefined {
  const result = spawnSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

const helmBinary = (): string => join(toolsDir(), 'bin', 'helm');
const motoVenv = (): string => join(toolsDir(), 'moto');
const venvPython = (venv: string): string => join(venv, 'bin', 'python');

/**
 * Helm, built from source through the Go module proxy with `go install`, the way Helm's Makefile
 * builds it, so no release binary is downloaded.
 */
export const helmTool: TestTool = {
  name: 'helm',
  version: HELM_VERSION,
  usedBy: ['helm/'],
  command: () => [helmBinary()],
  installedVersion: () => answer(helmBinary(), ['version', '--template', '{{.Version}}']),
  install: buildHelm,
};

/**
 * moto's server mode, from PyPI, in its own virtualenv. It is run as `python -m moto.server` rather
 * than through the `moto_server` script, whose first line names the folder pip installed it in: the
 * virtualenv is built in a scratch folder and renamed into place, so a run that dies half way never
 * leaves a half-installed one behind.
 */
export const motoTool: TestTool = {
  name: 'moto',
  version: MOTO_VERSION,
  usedBy: ['apps/backup-store/', 'libs/client-sdk-e2e/'],
  command: () => [venvPython(motoVenv()), '-m', 'moto.server'],
  installedVersion: () => motoVersion(motoVenv()),
  install: installMoto,
};

/**
 * kubeconform, built with `go install` like Helm, and the schemas it reads, all from package
 * registries so the chart validates offline: the Kubernetes API's from the PyPI package
 * kubernetes-validate, and the custom resources' from the CustomResourceDefinitions in the
 * operators' Go modules (kubernetes-schemas.ts). Its version names every pin, so changing any one
 * of them reinstalls.
 */
export const kubeconformTool: TestTool = {
  name: 'kubeconform',
  version: kubeconformStamp(),
  usedBy: ['helm/'],
  command: () => [kubeconformBinary()],
  installedVersion: installedKubeconform,
  install: installKubeconform,
};

export const TEST_TOOLS: readonly TestTool[] = [helmTool, kubeconformTool, motoTool];

/** Why `tool` cannot run as the tests expect (missing, or another version), or undefined when it can. */
export function testToolProblem(tool: TestTool): string | undefined {
  const installed = tool.installedVersion();
  if (installed === tool.version) return undefined;
  const where = relative(repoRoot(), toolsDir());
  return installed === undefined
    ? `${tool.name} ${tool.version} is not installed in ${where}: \`npm test\` installs it`
    : `${tool.name} in ${where} is ${installed}, not ${tool.version}: \`npm test\` replaces it`;
}

/** The tools among `tools` that the given spec files (absolute paths) run. */
export function testToolsUsedBy(
  tools: readonly TestTool[],
  testFiles: readonly string[],
  root: string,
): TestTool[] {
  const files = testFiles.map((file) => relative(root, file).split(sep).join('/'));
  return tools.filter((tool) => tool.usedBy.some((dir) => files.some((file) => file.startsWith(dir))));
}

/**
 * Installs those of `tools` that are missing or of another version, side by side, with a line of
 * progress for each; throws naming what to install when a prerequisite (Go, Python) is missing.
 */
export async function ensureTestTools(tools: readonly TestTool[], logger: Logger): Promise<void> {
  const needed = tools.filter((tool) => testToolProblem(tool) !== undefined);
  const results = await Promise.allSettled(needed.map((tool) => tool.install(logger)));
  const errors = results.flatMap((result) => (result.status === 'rejected' ? [result.reason as Error] : []));
  if (errors.length > 0) throw new Error(errors.map((error) => error.message).join('\n'));
  for (const tool of needed) {
    const problem = testToolProblem(tool);
    if (problem !== undefined) throw new Error(`installing ${tool.name} did not take: ${problem}`);
  }
}

const seconds = (since: number): string => `${Math.round((Date.now() - since) / 1000)} s`;

function tail(output: string, lines = 30): string {
  return output.trimEnd().split('\n').slice(-lines).join('\n');
}

// ---- Helm ----------------------------------------------------------------------------------------

/** The version a go.mod requires of `module`, e.g. `v0.37.0` for k8s.io/client-go. */
export function goModRequirement(goMod: string, module: string): string | undefined {
  const escaped = module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\s*(?:require\\s+)?${escaped}\\s+(v\\S+)`, 'm').exec(goMod)?.[1];
}

/** The Go version a go.mod's `go` line asks for, e.g. `1.26.0`. */
export function goModGoVersion(goMod: string): string | undefined {
  return /^go\s+(\d+\.\d+(?:\.\d+)?)\s*$/m.exec(goMod)?.[1];
}

/**
 * The Kubernetes version a client-go release belongs to: client-go v0.X.Y ships with Kubernetes
 * 1.X.Y.
 */
export function kubernetesVersionOfClientGo(clientGo: string): { major: number; minor: number } {
  const match = /^v0\.(\d+)\.\d+/.exec(clientGo);
  if (match === null) throw new Error(`not a client-go version: ${clientGo}`);
  return { major: 1, minor: Number(match[1]) };
}

/**
 * The -ldflags Helm's Makefile builds with: its own version, and the Kubernetes version it renders
 * for (.Capabilities.KubeVersion, `helm lint`'s deprecation checks). Without them `helm template`
 * would claim Kubernetes v1.20.
 */
export function helmLdflags(version: string, kubernetes: { major: number; minor: number }): string {
  const flags = ['-w', '-s', `-X helm.sh/helm/v3/internal/version.version=${version}`];
  for (const pkg of ['helm.sh/helm/v3/pkg/lint/rules', 'helm.sh/helm/v3/pkg/chartutil']) {
    flags.push(
      `-X ${pkg}.k8sVersionMajor=${kubernetes.major}`,
      `-X ${pkg}.k8sVersionMinor=${kubernetes.minor}`,
    );
  }
  return flags.join(' ');
}

function goVersionNumbers(version: string): number[] | undefined {
  const match = /(\d+)\.(\d+)(?:\.(\d+))?/.exec(version);
  return match === null ? undefined : [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

function atLeast(have: number[], need: number[]): boolean {
  for (let i = 0; i < need.length; i++) {
    if (have[i] !== need[i]) return (have[i] ?? 0) > (need[i] ?? 0);
  }
  return true;
}

/**
 * Why the installed Go (as `go env GOVERSION GOTOOLCHAIN` reports it) cannot build a module whose
 * go.mod asks for `need`, or undefined when it can: it is new enough, or it is Go 1.21 or newer and
 * GOTOOLCHAIN lets it fetch the toolchain the module asks for through the module proxy.
 */
export function goToolchainProblem(goVersion: string, goToolchain: string, need: string): string | undefined {
  const have = goVersionNumbers(goVersion);
  const needed = goVersionNumbers(need);
  if (have === undefined || needed === undefined) return undefined; // a development build: let go decide
  if (atLeast(have, needed)) return undefined;
  const switches = atLeast(have, [1, 21, 0]);
  const mayFetch = goToolchain !== '' && goToolchain !== 'local' && !goToolchain.endsWith('+path');
  if (switches && mayFetch) return undefined;
  const orFetch = switches ? ` or set GOTOOLCHAIN=go${need} to let go fetch it` : '';
  return `${goVersion} is too old to build helm ${HELM_VERSION}, which needs Go ${need}: install a newer Go (https://go.dev/dl/)${orFetch}`;
}

async function buildHelm(logger: Logger): Promise<void> {
  const go = which('go');
  if (go === undefined) {
    throw new Error(
      `go not found on PATH: it builds helm ${HELM_VERSION} for the chart tests; install a current Go from https://go.dev/dl/ (Debian's golang-go is too old for Helm)`,
    );
  }
  logger.info(`building helm ${HELM_VERSION} with go install (first run only, a few minutes)`);
  const started = Date.now();
  mkdirSync(join(toolsDir(), 'bin'), { recursive: true });
  // Outside any go.mod or go.work of the caller's, and GOBIN for this build alone.
  const work = mkdtempSync(join(toolsDir(), '.helm-build-'));
  try {
    const download = await run(go, ['mod', 'download', '-json', `${HELM_MODULE}@${HELM_VERSION}`], {
      cwd: work,
    });
    if (download.code !== 0) {
      throw new Error(`go mod download ${HELM_MODULE}@${HELM_VERSION} failed:\n${tail(download.output)}`);
    }
    const goMod = readFileSync((JSON.parse(download.stdout) as { GoMod: string }).GoMod, 'utf8');

    const need = goModGoVersion(goMod);
    const env = await run(go, ['env', 'GOVERSION', 'GOTOOLCHAIN'], { cwd: work });
    const [goVersion = '', goToolchain = ''] = env.stdout.split('\n').map((line) => line.trim());
    const tooOld = need === undefined ? undefined : goToolchainProblem(goVersion, goToolchain, need);
    if (tooOld !== undefined) throw new Error(tooOld);

    const clientGo = goModRequirement(goMod, 'k8s.io/client-go');
    if (clientGo === undefined) throw new Error(`helm ${HELM_VERSION}'s go.mod names no k8s.io/client-go`);
    const kubernetes = kubernetesVersionOfClientGo(clientGo);
    const install = await run(
      go,
      [
        'install',
        '-trimpath',
        '-ldflags',
        helmLdflags(HELM_VERSION, kubernetes),
        `${HELM_MODULE}/cmd/helm@${HELM_VERSION}`,
      ],
      { cwd: work, env: { ...process.env, GOBIN: work, CGO_ENABLED: '0' } },
    );
    if (install.code !== 0)
      throw new Error(`go install of helm ${HELM_VERSION} failed:\n${tail(install.output)}`);
    // A rename, so the tests never see a half-written binary.
    renameSync(join(work, 'helm'), helmBinary());
    logger.info(
      `helm ${HELM_VERSION} for Kubernetes ${kubernetes.major}.${kubernetes.minor} built in ${seconds(started)}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- kubeconform and its schemas --------------------------------------------------------------

const kubeconformBinary = (): string => join(toolsDir(), 'bin', 'kubeconform');
const schemasDir = (): string => join(toolsDir(), 'kubernetes-schemas');
const SCHEMAS_STAMP = 'VERSION';

function kubeconformStamp(): string {
  const crds = CRD_SOURCES.map((source) => {
    const kinds = source.files.map((file) => (file.split('/').pop() ?? file).replace(/\.yaml$/, ''));
    return `${source.module}@${source.version} (${kinds.join(', ')})`;
  }).join(', ');
  return `${KUBECONFORM_VERSION} (kubernetes-validate ${KUBERNETES_VALIDATE_VERSION}; ${crds})`;
}

function installedKubeconform(): string | undefined {
  const binary = answer(kubeconformBinary(), ['-v']);
  if (binary === undefined) return undefined;
  const stampFile = join(schemasDir(), SCHEMAS_STAMP);
  const schemas = existsSync(stampFile) ? readFileSync(stampFile, 'utf8').trim() : 'no schemas';
  return binary === KUBECONFORM_VERSION ? schemas : `${binary} (${schemas})`;
}

/**
 * Where kubeconform finds a schema (its -schema-location templates): the Kubernetes API's for the
 * version asked (-kubernetes-version, one of KUBERNETES_SCHEMA_VERSIONS; strict with -strict), then
 * the custom resources'.
 */
export function kubeconformSchemaLocations(): string[] {
  return [
    join(
      schemasDir(),
      'kubernetes',
      '{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}',
      '{{ .ResourceKind }}{{ .KindSuffix }}.json',
    ),
    join(schemasDir(), 'crds', '{{ .Group }}', '{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'),
  ];
}

function goBinary(purpose: string): string {
  const go = which('go');
  if (go === undefined) {
    throw new Error(
      `go not found on PATH: it builds ${purpose}; install a current Go from https://go.dev/dl/`,
    );
  }
  return go;
}

/** `go mod download` of one module version; returns the folder the module's files are in. */
async function goModuleDir(go: string, cwd: string, module: string, version: string): Promise<string> {
  const download = await run(go, ['mod', 'download', '-json', `${module}@${version}`], { cwd });
  if (download.code !== 0)
    throw new Error(`go mod download ${module}@${version} failed:\n${tail(download.output)}`);
  return (JSON.parse(download.stdout) as { Dir: string }).Dir;
}

/** Extracts the strict schemas of KUBERNETES_SCHEMA_VERSIONS from kubernetes-validate's wheel. */
const EXTRACT_KUBERNETES_SCHEMAS = `
import sys, zipfile
wheel, target, *versions = sys.argv[1:]
prefix = 'kubernetes_validate/kubernetes-json-schema/'
wanted = tuple(prefix + 'v%s-local-strict/' % v for v in versions)
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(wanted) and name.endswith('.json'):
            z.extract(name, target)
            count += 1
print(count)
`;

async function installKubernetesSchemas(work: string, target: string): Promise<number> {
  const venv = join(work, 'venv');
  const made = await run('python3', ['-m', 'venv', venv]);
  if (made.code !== 0) throw new Error(`python3 -m venv failed:\n${tail(made.output)}`);
  const requirement = `kubernetes-validate==${KUBERNETES_VALIDATE_VERSION}`;
  const wheels = join(work, 'wheels');
  const pip = await run(venvPython(venv), [
    '-m',
    'pip',
    'download',
    '--quiet',
    '--disable-pip-version-check',
    '--no-input',
    '--no-deps',
    '--only-binary=:all:',
    '--dest',
    wheels,
    requirement,
  ]);
  if (pip.code !== 0) throw new Error(`pip download ${requirement} failed:\n${tail(pip.output)}`);
  const wheel = readdirSync(wheels).find((name) => name.endsWith('.whl'));
  if (wheel === undefined) throw new Error(`pip download ${requirement} left no wheel`);
  const unpacked = join(work, 'unpacked');
  const extract = await run(venvPython(venv), [
    '-c',
    EXTRACT_KUBERNETES_SCHEMAS,
    join(wheels, wheel),
    unpacked,
    ...KUBERNETES_SCHEMA_VERSIONS,
  ]);
  if (extract.code !== 0) throw new Error(`unpacking ${wheel} failed:\n${tail(extract.output)}`);
  const root = join(unpacked, 'kubernetes_validate', 'kubernetes-json-schema');
  let files = 0;
  for (const version of KUBERNETES_SCHEMA_VERSIONS) {
    const from = join(root, `v${version}-local-strict`);
    if (!existsSync(from)) throw new Error(`${requirement} has no schemas for Kubernetes ${version}`);
    const to = join(target, `v${version}-local-strict`);
    mkdirSync(to, { recursive: true });
    for (const name of readdirSync(from)) {
      writeFileSync(join(to, name), kubeconformReadable(readFileSync(join(from, name), 'utf8')));
      files++;
    }
  }
  return files;
}

async function installCrdSchemas(go: string, work: string, target: string): Promise<number> {
  let files = 0;
  for (const source of CRD_SOURCES) {
    const dir = await goModuleDir(go, work, source.module, source.version);
    for (const file of source.files) {
      for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
        for (const { group, kind, version, schema } of crdJsonSchemas(doc.toJS())) {
          const path = join(target, group, `${kind}_${version}.json`);
          mkdirSync(dirname(path), { recursive: true });
          writeFileSync(path, JSON.stringify(schema));
          files++;
        }
      }
    }
  }
  return files;
}

async function installKubeconform(logger: Logger): Promise<void> {
  const go = goBinary(`kubeconform ${KUBECONFORM_VERSION} for the chart tests`);
  await ensurePythonVenv(logger);
  logger.info(`installing kubeconform ${KUBECONFORM_VERSION} and the Kubernetes schemas (first run only)`);
  const started = Date.now();
  mkdirSync(join(toolsDir(), 'bin'), { recursive: true });
  const work = mkdtempSync(join(toolsDir(), '.kubeconform-build-'));
  try {
    const install = await run(
      go,
      [
        'install',
        '-trimpath',
        '-ldflags',
        `-w -s -X main.version=${KUBECONFORM_VERSION}`,
        `${KUBECONFORM_MODULE}/cmd/kubeconform@${KUBECONFORM_VERSION}`,
      ],
      { cwd: work, env: { ...process.env, GOBIN: work, CGO_ENABLED: '0' } },
    );
    if (install.code !== 0) {
      throw new Error(`go install of kubeconform ${KUBECONFORM_VERSION} failed:\n${tail(install.output)}`);
    }
    const schemas = join(work, 'kubernetes-schemas');
    const apiFiles = await installKubernetesSchemas(work, join(schemas, 'kubernetes'));
    const crdFiles = await installCrdSchemas(go, work, join(schemas, 'crds'));
    writeFileSync(join(schemas, SCHEMAS_STAMP), `${kubeconformStamp()}\n`);
    // Renames, so the tests never see half a set of schemas or a half-written binary.
    rmSync(schemasDir(), { recursive: true, force: true });
    renameSync(schemas, schemasDir());
    renameSync(join(work, 'kubeconform'), kubeconformBinary());
    logger.info(
      `kubeconform ${KUBECONFORM_VERSION} with ${apiFiles} Kubernetes and ${crdFiles} custom resource schemas installed in ${seconds(started)}`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- moto ----------------------------------------------------------------------------------------

function motoVersion(venv: string): string | undefined {
  return answer(venvPython(venv), ['-c', 'import importlib.metadata as m; print(m.version("moto"))']);
}

/** Whether python3 is there and can make a virtualenv (Debian keeps venv's pip in python3-venv). */
function pythonCanMakeVenv(): boolean {
  return which('python3') !== undefined && answer('python3', ['-c', 'import venv, ensurepip']) !== undefined;
}

async function ensurePythonVenv(logger: Logger): Promise<void> {
  if (pythonCanMakeVenv()) return;
  const packages = which('python3') === undefined ? ['python3', 'python3-venv'] : ['python3-venv'];
  logger.info(`installing ${packages.join(' ')} for moto's S3 server`);
  await installDebianPackages(packages, () => (pythonCanMakeVenv() ? [] : packages));
}

async function installMoto(logger: Logger): Promise<void> {
  await ensurePythonVenv(logger);
  const requirement = `moto[server]==${MOTO_VERSION}`;
  const target = motoVenv();
  logger.info(`installing ${requirement} with pip into ${relative(repoRoot(), target)} (first run only)`);
  const started = Date.now();
  mkdirSync(toolsDir(), { recursive: true });
  const work = mkdtempSync(join(toolsDir(), '.moto-build-'));
  try {
    const venv = await run('python3', ['-m', 'venv', work]);
    if (venv.code !== 0) throw new Error(`python3 -m venv failed:\n${tail(venv.output)}`);
    const pip = await run(venvPython(work), [
      '-m',
      'pip',
      'install',
      '--quiet',
      '--disable-pip-version-check',
      '--no-input',
      requirement,
    ]);
    if (pip.code !== 0) throw new Error(`pip install ${requirement} failed:\n${tail(pip.output)}`);
    rmSync(target, { recursive: true, force: true });
    chmodSync(work, 0o755); // mkdtemp made it private to this user
    try {
      renameSync(work, target);
    } catch (error) {
      // Another run installed it in the meantime; theirs will do.
      if (motoVersion(target) !== MOTO_VERSION) throw error;
    }
    logger.info(`moto ${MOTO_VERSION} installed in ${seconds(started)}`);
  } finally {
    if (existsSync(work)) rmSync(work, { recursive: true, force: true });
  }
}
