// Runs ESLint's Node API for module-boundaries.spec.ts in a plain Node
// process: inside Jest's module sandbox ESLint cannot import() the ESM
// eslint.config.mjs without --experimental-vm-modules.
//
// stdin:  { "snippets": [{ "filePath", "code" }] }  or  { "files": [...], "ignore": [...] }
// stdout: one array of messages per snippet, or a list of files with their messages.
import { ESLint } from 'eslint';
import { createProjectGraphAsync } from 'nx/src/devkit-exports.js';
import tseslint from 'typescript-eslint';

const BOUNDARIES = '@nx/enforce-module-boundaries';
const repoRoot = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

const compact = (m) => ({
  ruleId: m.ruleId,
  messageId: m.messageId,
  severity: m.severity,
  message: m.message,
  line: m.line,
  column: m.column,
});

async function lintSnippets(snippets) {
  const eslint = new ESLint({
    cwd: repoRoot,
    // Snippets are not on disk, so the TypeScript project cannot type them;
    // the boundary rule needs only the import paths and the Nx project graph.
    overrideConfig: [{ files: ['**/*.ts'], ...tseslint.configs.disableTypeChecked }],
    ruleFilter: ({ ruleId }) => ruleId === BOUNDARIES,
  });
  const out = [];
  for (const { filePath, code } of snippets) {
    const [result] = await eslint.lintText(code, { filePath: `${repoRoot}/${filePath}` });
    out.push(result.messages.map(compact));
  }
  return out;
}

async function lintFiles(files, ignore) {
  const eslint = new ESLint({ cwd: repoRoot, ignorePatterns: ignore });
  const results = await eslint.lintFiles(files);
  return results.map((r) => ({
    filePath: r.filePath.slice(repoRoot.length + 1),
    messages: r.messages.map(compact),
  }));
}

// The boundary rule reads Nx's cached project graph and silently skips itself
// when there is none, so make sure the cache exists and is current.
await createProjectGraphAsync({ exitOnError: false });

let input = '';
for await (const chunk of process.stdin) input += chunk;
const request = JSON.parse(input);
const output = request.snippets
  ? await lintSnippets(request.snippets)
  : await lintFiles(request.files, request.ignore ?? []);
process.stdout.write(JSON.stringify(output));
