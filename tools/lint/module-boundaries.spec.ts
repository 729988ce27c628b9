import { spawn } from 'node:child_process';
import { join } from 'node:path';

// The repository's own eslint.config.mjs decides every outcome below; nothing
// here restates a constraint. ESLint runs in a child process (run-eslint.mjs)
// because Jest's sandbox cannot load an ESM config file.
const repoRoot = join(__dirname, '../..');
const RULE = '@nx/enforce-module-boundaries';

interface Message {
  ruleId: string | null;
  messageId?: string;
  severity: number;
  message: string;
  line: number;
  column: number;
}

function runEslint<T>(request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    // One type-aware ESLint over every project needs more than Node's default 4 GiB heap.
    const child = spawn(process.execPath, ['--max-old-space-size=8192', join(__dirname, 'run-eslint.mjs')], {
      cwd: repoRoot,
      env: { ...process.env, NX_DAEMON: 'false' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as T);
      else reject(new Error(`run-eslint.mjs exited with ${code}: ${stderr}`));
    });
    child.stdin.end(JSON.stringify(request));
  });
}

/** One import line saved at `filePath`; it imports `x`, which is exported so nothing is unused. */
interface Snippet {
  name: string;
  filePath: string;
  code: string;
  /** For a forbidden import: why the rule must reject it. */
  messageId?: string;
}

const snippet = (name: string, filePath: string, importLine: string, messageId?: string): Snippet => ({
  name,
  filePath,
  code: `${importLine}\nexport { x };\n`,
  messageId,
});

// Each tag case is picked so the import would not also close a dependency
// cycle: Nx reports cycles before tags, and the tags are what is under test.
const forbidden: Snippet[] = [
  // (a) apps never import other apps
  snippet(
    'gateway imports presence by a relative path',
    'apps/gateway/src/probe.ts',
    "import { AppModule as x } from '../../presence/src/app.module';",
    'noRelativeOrAbsoluteImportsAcrossLibraries',
  ),
  snippet(
    'gateway imports presence by a workspace path',
    'apps/gateway/src/probe.ts',
    "import { AppModule as x } from 'apps/presence/src/app.module';",
    'noRelativeOrAbsoluteImportsAcrossLibraries',
  ),
  // Apps have no @sotto alias, so the name resolves to no project and no
  // declared package.
  snippet(
    'gateway imports presence by an @sotto name',
    'apps/gateway/src/probe.ts',
    "import { AppModule as x } from '@sotto/presence';",
    'noTransitiveDependencies',
  ),
  // (b) scope:shared never depends on scope:server
  snippet(
    'platform-ids imports platform-periodic',
    'libs/platform/ids/src/probe.ts',
    "import { PeriodicTask as x } from '@sotto/platform/periodic';",
    'onlyTagsConstraintViolation',
  ),
  snippet(
    'the test harness imports platform-grpc',
    'libs/testing/src/probe.ts',
    "import { runService as x } from '@sotto/platform/grpc';",
    'onlyTagsConstraintViolation',
  ),
  // (c) type:contracts depends on nothing of ours
  snippet(
    'contracts imports platform-config',
    'libs/contracts/src/probe.ts',
    "import { url as x } from '@sotto/platform/config';",
    'emptyOnlyTagsConstraintViolation',
  ),
  // the other type and scope constraints
  snippet(
    'platform-logging imports local-infra',
    'libs/platform/logging/src/probe.ts',
    "import { freePort as x } from '@sotto/local-infra';",
    'onlyTagsConstraintViolation',
  ),
  snippet(
    'gateway imports the test harness outside a spec',
    'apps/gateway/src/upstream/probe.ts',
    "import { describeServiceBoot as x } from '@sotto/testing';",
    'onlyTagsConstraintViolation',
  ),
  snippet(
    'platform-config imports the test harness outside a spec',
    'libs/platform/config/src/probe.ts',
    "import { testInfra as x } from '@sotto/testing';",
    'onlyTagsConstraintViolation',
  ),
  snippet(
    'client-sdk imports a scope:server platform lib',
    'libs/client-sdk/src/probe.ts',
    "import { internalChannelOptions as x } from '@sotto/platform/grpc';",
    'onlyTagsConstraintViolation',
  ),
  snippet(
    'platform-config imports an npm package missing from package.json',
    'libs/platform/config/src/probe.ts',
    "import x from 'chalk';",
    'noTransitiveDependencies',
  ),
];

const allowed: Snippet[] = [
  // (d)
  snippet(
    'gateway imports platform-grpc',
    'apps/gateway/src/upstream/probe.ts',
    "import { internalChannelOptions as x } from '@sotto/platform/grpc';",
  ),
  snippet(
    'gateway imports contracts',
    'apps/gateway/src/probe.ts',
    "import { CONTRACTS as x } from '@sotto/contracts';",
  ),
  snippet(
    'a gateway spec imports the test harness',
    'apps/gateway/src/probe.spec.ts',
    "import { describeServiceBoot as x } from '@sotto/testing';",
  ),
  snippet(
    'a platform-config spec imports the test harness',
    'libs/platform/config/src/probe.spec.ts',
    "import { testInfra as x } from '@sotto/testing';",
  ),
  snippet(
    'platform-grpc imports platform-logging',
    'libs/platform/grpc/src/probe.ts',
    "import { createLogger as x } from '@sotto/platform/logging';",
  ),
  snippet(
    'stack imports local-infra',
    'libs/stack/src/probe.ts',
    "import { freePort as x } from '@sotto/local-infra';",
  ),
  snippet(
    'client-sdk imports platform-config',
    'libs/client-sdk/src/probe.ts',
    "import { url as x } from '@sotto/platform/config';",
  ),
];

let results: Map<string, Message[]>;

beforeAll(async () => {
  const snippets = [...forbidden, ...allowed];
  const messages = await runEslint<Message[][]>({ snippets });
  results = new Map(snippets.map((s, i) => [s.name, messages[i] ?? []]));
});

describe('forbidden imports are errors from @nx/enforce-module-boundaries', () => {
  it.each(forbidden.map((s) => [s.name, s.messageId]))('%s (%s)', (name, messageId) => {
    expect(results.get(name)?.map((m) => [m.ruleId, m.severity, m.messageId])).toEqual([
      [RULE, 2, messageId],
    ]);
  });

  it('names the tags in its message', () => {
    expect(results.get('platform-ids imports platform-periodic')?.[0]?.message).toBe(
      'A project tagged with "scope:shared" can only depend on libs tagged with "scope:shared"',
    );
  });
});

describe('allowed imports are not reported', () => {
  it.each(allowed.map((s) => [s.name]))('%s', (name) => {
    expect(results.get(name)).toEqual([]);
  });
});

describe('the workspace as it is', () => {
  it('lints apps, libs and tools without errors', async () => {
    const files = await runEslint<{ filePath: string; messages: Message[] }[]>({
      files: ['apps', 'libs', 'tools'],
    });
    const errors = files.flatMap((f) =>
      f.messages
        .filter((m) => m.severity === 2)
        .map((m) => `${f.filePath}:${m.line}:${m.column} ${m.ruleId ?? 'parse'} ${m.message}`),
    );
    expect(errors).toEqual([]);
    expect(files.map((f) => f.filePath)).toEqual(
      expect.arrayContaining([
        'apps/gateway/src/main.ts',
        'libs/contracts/src/index.ts',
        'tools/lint/module-boundaries.spec.ts',
      ]),
    );
  });
});
