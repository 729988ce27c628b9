import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { repoRoot } from './repo-root';
import { installDebianPackages } from './system-packages';
import { run, which } from './system';
import type { Logger } from './types';

/**
 * Programs that some test suites run and no Debian package provides at the version they need:
 * Helm, which the chart suite (helm/chart.spec.ts) lints and renders with, and moto's S3-compatible server,
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
const HELM_MODULE = 'helm.sh/helm/v3';

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

export const TEST_TOOLS: readonly TestTool[] = [helmTool, motoTool];

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
