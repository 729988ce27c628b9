import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

// CI runs `nx run-many -t lint typecheck` (or `nx affected`): a project without those targets,
// or whose tsconfig.json leaves the strict base, would pass unchecked. A new project copies the
// tsconfig.json and the `"typecheck": {}` of any other; nx.json's targetDefaults do the rest.

const root = join(__dirname, '..', '..');
const run = promisify(execFile);

interface ProjectNode {
  data: { root: string; targets?: Record<string, unknown> };
}

async function projects(): Promise<Record<string, ProjectNode>> {
  const { stdout } = await run(
    process.execPath,
    [join(root, 'node_modules', 'nx', 'bin', 'nx.js'), 'graph', '--file=stdout'],
    { cwd: root, env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true' }, maxBuffer: 64 << 20 },
  );
  return (JSON.parse(stdout) as { graph: { nodes: Record<string, ProjectNode> } }).graph.nodes;
}

function hasTypeScript(dir: string): boolean {
  return readdirSync(join(root, dir), { withFileTypes: true }).some((entry) =>
    entry.isDirectory()
      ? entry.name !== 'node_modules' && hasTypeScript(join(dir, entry.name))
      : entry.name.endsWith('.ts'),
  );
}

interface TsConfig {
  extends?: string;
  compilerOptions?: { strict?: boolean };
  include?: string[];
}

describe('every TypeScript project', () => {
  it('has a strict tsconfig.json over all its files, and typecheck and lint targets', async () => {
    const problems: string[] = [];
    const checked: string[] = [];
    for (const [name, { data }] of Object.entries(await projects())) {
      if (!hasTypeScript(data.root)) continue;
      checked.push(name);
      for (const target of ['typecheck', 'lint']) {
        if (!data.targets?.[target]) problems.push(`${name} has no ${target} target`);
      }
      const file = join(root, data.root, 'tsconfig.json');
      if (!existsSync(file)) {
        problems.push(`${name} has no tsconfig.json`);
        continue;
      }
      const config = JSON.parse(readFileSync(file, 'utf8')) as TsConfig;
      if (!config.extends?.endsWith('/tsconfig.base.json')) {
        problems.push(`${name}'s tsconfig.json does not extend tsconfig.base.json`);
      }
      if (config.compilerOptions?.strict === false) problems.push(`${name}'s tsconfig.json turns strict off`);
      if (JSON.stringify(config.include) !== '["**/*.ts"]') {
        problems.push(
          `${name}'s tsconfig.json includes ${JSON.stringify(config.include)}, not all its TypeScript`,
        );
      }
    }
    expect(checked).toEqual(
      expect.arrayContaining(['message-relay', 'contracts', 'client-sdk-e2e', 'helm-chart']),
    );
    expect(problems).toEqual([]);
  });
});
