import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { SERVICE_NAMES, type ServiceName } from '@sotto/stack';

// `nx affected -t test` picks suites from the project graph. Suites start the services by file path
// (libs/stack runs apps/<service>/src/main.ts), which Nx cannot see in any import, so each project
// whose code starts a service names it in `implicitDependencies`. These tests ask Nx, the way a
// contributor would, what a change affects.

const root = join(__dirname, '..', '..');
const run = promisify(execFile);

/** `nx show projects --affected --files=<file>`, sorted. */
async function affectedBy(file: string): Promise<string[]> {
  const { stdout } = await run(
    process.execPath,
    [
      join(root, 'node_modules', 'nx', 'bin', 'nx.js'),
      'show',
      'projects',
      '--affected',
      `--files=${file}`,
      '--json',
    ],
    { cwd: root, env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' } },
  );
  return (JSON.parse(stdout) as string[]).sort();
}

/** Every project whose suites (or tools) run all six services. */
const RUN_THE_PLATFORM = ['cli', 'client-sdk-e2e', 'fuzz', 'gateway', 'image', 'loadgen', 'tools'];

describe('nx affected', () => {
  it('selects every suite that runs the message relay when its code changes', async () => {
    expect(await affectedBy('apps/message-relay/src/send/send.service.ts')).toEqual(
      [...RUN_THE_PLATFORM, 'message-relay'].sort(),
    );
  });

  it('selects the relay too when a service the relay calls changes', async () => {
    expect(await affectedBy('apps/presence/src/main.ts')).toEqual(
      [...RUN_THE_PLATFORM, 'message-relay', 'presence'].sort(),
    );
  });

  it('selects only the chart project for a chart-only change', async () => {
    expect(await affectedBy('helm/sotto/values.yaml')).toEqual(['helm-chart']);
    expect(await affectedBy('helm/sotto/templates/deployment.yaml')).toEqual(['helm-chart']);
  });

  it('selects only the image for a change to how it is built', async () => {
    expect(await affectedBy('deploy/Dockerfile')).toEqual(['image']);
    expect(await affectedBy('.dockerignore')).toEqual(['image']);
  });

  it("selects a library's dependents, and what runs them", async () => {
    const affected = await affectedBy('libs/platform/config/src/index.ts');
    expect(affected).toEqual(
      expect.arrayContaining(['platform-config', ...SERVICE_NAMES, ...RUN_THE_PLATFORM]),
    );
    expect(affected).not.toContain('helm-chart');
    expect(await affectedBy('libs/client-sdk/src/index.ts')).toEqual(
      expect.arrayContaining(['client-sdk', 'client-sdk-e2e', 'cli', 'loadgen']),
    );
  });
});

// The harness and libs/stack start whichever service their caller names; the edge belongs to the
// caller. These are the calls that start one (or, for a platform, all six).
const STARTS_ONE =
  /\b(?:startTestService|describeServiceBoot|runServiceToExit|cluster\.start)\(\s*'([a-z-]+)'|\bstartServiceProcess\(\{\s*name:\s*'([a-z-]+)'/g;
const STARTS_ALL = /\b(?:startTestPlatform|startPlatform|startScratchPlatform)\(/;
/** Where those calls are defined rather than made, and this file, which names them. */
const DEFINITIONS = [
  /^libs\/stack\/src\/(?!.*\.spec\.ts$)/,
  /^libs\/testing\/src\/(?!.*\.spec\.ts$)/,
  /^tools\/graph\//,
];

function sourceFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory())
      return entry.name === 'node_modules' || entry.name === 'generated' ? [] : sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** The Nx project a file belongs to: the name in the nearest project.json above it. */
function projectOf(file: string): string {
  for (let dir = dirname(join(root, file)); dir !== root; dir = dirname(dir)) {
    const manifest = join(dir, 'project.json');
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, 'utf8')) as { name: string }).name;
  }
  throw new Error(`${file} belongs to no project`);
}

/** Which services each file starts, found by reading the workspace's TypeScript. */
function serviceStarts(): { file: string; project: string; service: ServiceName }[] {
  const services: readonly string[] = SERVICE_NAMES;
  return ['apps', 'libs', 'tools']
    .flatMap(sourceFiles)
    .filter((file) => !DEFINITIONS.some((pattern) => pattern.test(file)))
    .flatMap((file) => {
      const code = readFileSync(join(root, file), 'utf8');
      const started = new Set<ServiceName>(STARTS_ALL.test(code) ? SERVICE_NAMES : []);
      for (const match of code.matchAll(STARTS_ONE)) {
        const name = match[1] ?? match[2];
        if (name !== undefined && services.includes(name)) started.add(name as ServiceName);
      }
      return [...started].map((service) => ({ file, project: projectOf(file), service }));
    });
}

describe('the project graph', () => {
  it('puts every project that starts a service among those a change to that service affects', async () => {
    const starts = serviceStarts();
    // The scan must see the suites it guards, or it proves nothing.
    expect(starts).toEqual(
      expect.arrayContaining([
        {
          file: 'apps/message-relay/src/testing/relay-neighbours.ts',
          project: 'message-relay',
          service: 'presence',
        },
        { file: 'apps/cli/src/main.spec.ts', project: 'cli', service: 'gateway' },
        { file: 'tools/loadgen/own-platform.ts', project: 'loadgen', service: 'key-vault' },
        { file: 'tools/fuzz/main.ts', project: 'fuzz', service: 'gateway' },
      ]),
    );

    const affected = new Map<ServiceName, string[]>();
    for (const service of SERVICE_NAMES) {
      affected.set(service, await affectedBy(`apps/${service}/src/main.ts`));
    }
    const missing = starts
      .filter(({ project, service }) => !affected.get(service)?.includes(project))
      .map(
        ({ file, project, service }) =>
          `${file} starts ${service}; add it to ${project}'s implicitDependencies`,
      );
    expect(missing).toEqual([]);
  });
});
