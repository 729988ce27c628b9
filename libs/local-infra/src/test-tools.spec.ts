import {
  ensureTestTools,
  goModGoVersion,
  goModRequirement,
  goToolchainProblem,
  helmLdflags,
  kubernetesVersionOfClientGo,
  testToolProblem,
  testToolsUsedBy,
  helmTool,
  kubeconformTool,
  motoTool,
  TEST_TOOLS,
  type TestTool,
} from './test-tools';
import { silentLogger } from './types';

const HELM_GO_MOD = `module helm.sh/helm/v3

go 1.26.0

toolchain go1.26.2

require (
\tgithub.com/BurntSushi/toml v1.6.0
\tk8s.io/client-go v0.37.0
\tk8s.io/client-go-extras v0.1.0
)

require k8s.io/klog/v2 v2.130.1 // indirect
`;

describe('reading helm’s go.mod', () => {
  it('finds the version required of a module, in a block or on its own line', () => {
    expect(goModRequirement(HELM_GO_MOD, 'k8s.io/client-go')).toBe('v0.37.0');
    expect(goModRequirement(HELM_GO_MOD, 'k8s.io/klog/v2')).toBe('v2.130.1');
    expect(goModRequirement(HELM_GO_MOD, 'k8s.io/api')).toBeUndefined();
  });

  it('takes the go line, not the toolchain line', () => {
    expect(goModGoVersion(HELM_GO_MOD)).toBe('1.26.0');
    expect(goModGoVersion('module m\n\ngo 1.22\n')).toBe('1.22');
    expect(goModGoVersion('module m\n')).toBeUndefined();
  });

  it('maps client-go v0.X to Kubernetes 1.X', () => {
    expect(kubernetesVersionOfClientGo('v0.37.0')).toEqual({ major: 1, minor: 37 });
    expect(kubernetesVersionOfClientGo('v0.35.4')).toEqual({ major: 1, minor: 35 });
    expect(() => kubernetesVersionOfClientGo('v1.2.3')).toThrow('not a client-go version');
  });

  it('stamps helm’s version, and the Kubernetes version into both packages that read it', () => {
    expect(helmLdflags('v3.22.0', { major: 1, minor: 37 }).split(' -X ')).toEqual([
      '-w -s',
      'helm.sh/helm/v3/internal/version.version=v3.22.0',
      'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1',
      'helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37',
      'helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1',
      'helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37',
    ]);
  });
});

describe('whether the installed Go can build helm', () => {
  it('accepts a Go at least as new as the go line', () => {
    expect(goToolchainProblem('go1.26.8', 'local', '1.26.0')).toBeUndefined();
    expect(goToolchainProblem('go1.26.0', 'local', '1.26.0')).toBeUndefined();
    expect(goToolchainProblem('go1.27rc1', 'local', '1.26.0')).toBeUndefined();
    expect(goToolchainProblem('go1.26.0', 'local', '1.26')).toBeUndefined();
  });

  it('refuses an older Go that may not fetch a newer toolchain, saying what to do', () => {
    expect(goToolchainProblem('go1.24.4', 'local', '1.26.0')).toBe(
      'go1.24.4 is too old to build helm v3.22.0, which needs Go 1.26.0: install a newer Go (https://go.dev/dl/) or set GOTOOLCHAIN=go1.26.0 to let go fetch it',
    );
    expect(goToolchainProblem('go1.26.0', 'local', '1.26.1')).toContain('too old');
    expect(goToolchainProblem('go1.25.9', 'go1.25.9+path', '1.26.0')).toContain('too old');
  });

  it('leaves it to an older Go that fetches the toolchain itself (Go 1.21 and newer)', () => {
    expect(goToolchainProblem('go1.24.4', 'auto', '1.26.0')).toBeUndefined();
    expect(goToolchainProblem('go1.21.0', 'go1.26.0+auto', '1.26.0')).toBeUndefined();
  });

  it('does not offer GOTOOLCHAIN to a Go from before toolchains (Debian bookworm’s 1.19)', () => {
    const problem = goToolchainProblem('go1.19.8', '', '1.26.0');
    expect(problem).toContain('go1.19.8 is too old');
    expect(problem).not.toContain('GOTOOLCHAIN');
  });
});

function fakeTool(
  name: string,
  usedBy: string[],
  installed: () => string | undefined,
  install = jest.fn(),
): TestTool {
  return {
    name,
    version: '1.0.0',
    usedBy,
    command: () => [`/nowhere/${name}`],
    installedVersion: installed,
    install,
  };
}

describe('which tools a run needs', () => {
  const root = '/repo';
  const chart = fakeTool('chart-tool', ['helm/'], () => undefined);
  const s3 = fakeTool('s3-tool', ['apps/backup-store/'], () => undefined);

  it('picks the tools whose folders hold a selected spec', () => {
    expect(testToolsUsedBy([chart, s3], ['/repo/apps/backup-store/src/s3.spec.ts'], root)).toEqual([s3]);
    expect(
      testToolsUsedBy(
        [chart, s3],
        ['/repo/helm/chart.spec.ts', '/repo/apps/backup-store/src/local.spec.ts'],
        root,
      ),
    ).toEqual([chart, s3]);
  });

  it('picks none for specs elsewhere, including folders that only start with the same name', () => {
    expect(testToolsUsedBy([chart, s3], ['/repo/apps/gateway/src/gateway.spec.ts'], root)).toEqual([]);
    expect(
      testToolsUsedBy([chart, s3], ['/repo/helmet/x.spec.ts', '/repo/apps/backup-store-2/a.spec.ts'], root),
    ).toEqual([]);
    expect(testToolsUsedBy([chart, s3], [], root)).toEqual([]);
  });
});

describe("the project's tools", () => {
  it('gives the chart suite Helm and kubeconform, and the backup-store moto', () => {
    expect(testToolsUsedBy(TEST_TOOLS, ['/repo/helm/chart.spec.ts'], '/repo')).toEqual([
      helmTool,
      kubeconformTool,
    ]);
    expect(testToolsUsedBy(TEST_TOOLS, ['/repo/apps/backup-store/src/s3.spec.ts'], '/repo')).toEqual([
      motoTool,
    ]);
  });

  it('pins kubeconform and every schema source in the version it checks, so changing one reinstalls', () => {
    expect(kubeconformTool.version).toMatch(/^v\d+\.\d+\.\d+ \(kubernetes-validate \d+\.\d+\.\d+; /);
    for (const crd of [
      'monitoring.coreos.com_servicemonitors',
      'monitoring.coreos.com_prometheusrules',
      'cert-manager.io_certificates',
      'keda.sh_scaledobjects',
      'keda.sh_triggerauthentications',
    ]) {
      expect(kubeconformTool.version).toContain(crd);
    }
  });
});

describe('installing', () => {
  it('says whether a tool is missing or another version, and what installs it', () => {
    expect(testToolProblem(fakeTool('t', [], () => '1.0.0'))).toBeUndefined();
    expect(testToolProblem(fakeTool('t', [], () => undefined))).toBe(
      't 1.0.0 is not installed in .sotto/tools: `npm test` installs it',
    );
    expect(testToolProblem(fakeTool('t', [], () => '0.9.0'))).toBe(
      't in .sotto/tools is 0.9.0, not 1.0.0: `npm test` replaces it',
    );
  });

  it('installs only what is missing or outdated', async () => {
    let version: string | undefined = '0.9.0';
    const outdated = fakeTool(
      'outdated',
      [],
      () => version,
      jest.fn(() => Promise.resolve(void (version = '1.0.0'))),
    );
    const current = fakeTool('current', [], () => '1.0.0');
    await ensureTestTools([outdated, current], silentLogger);
    expect(outdated.install).toHaveBeenCalledTimes(1);
    expect(current.install).not.toHaveBeenCalled();
  });

  it('reports every failed install, after letting the others finish', async () => {
    let installed: string | undefined;
    const good = fakeTool(
      'good',
      [],
      () => installed,
      jest.fn(() => Promise.resolve(void (installed = '1.0.0'))),
    );
    const noGo = fakeTool(
      'a',
      [],
      () => undefined,
      jest.fn(() => Promise.reject(new Error('go not found on PATH'))),
    );
    const noPython = fakeTool(
      'b',
      [],
      () => undefined,
      jest.fn(() => Promise.reject(new Error('missing python3'))),
    );
    await expect(ensureTestTools([noGo, good, noPython], silentLogger)).rejects.toThrow(
      'go not found on PATH\nmissing python3',
    );
    expect(installed).toBe('1.0.0');
  });

  it('fails when an install leaves the tool still unusable', async () => {
    const broken = fakeTool(
      'broken',
      [],
      () => '0.1.0',
      jest.fn(() => Promise.resolve()),
    );
    await expect(ensureTestTools([broken], silentLogger)).rejects.toThrow(
      'installing broken did not take: broken in .sotto/tools is 0.1.0, not 1.0.0',
    );
  });
});
