// Compiles one service app for production: `node tools/build/build-service.mjs <app>`.
//
// Output: dist/apps/<app>/ mirrors the repository, holding only the files the
// app's main.ts reaches at run time (followed through its requires), compiled
// by SWC with decorator metadata (NestJS injection needs it), `@sotto/*`
// aliases rewritten to relative paths, and source maps. Each reached
// project's `proto/` and `migrations/` are copied beside its `src/`, so code
// that finds them through `join(__dirname, '..', …)` works unchanged:
//
//   dist/apps/gateway/apps/gateway/src/main.js      node dist/apps/gateway/apps/gateway/src/main.js
//   dist/apps/gateway/libs/contracts/src/…
//   dist/apps/gateway/libs/contracts/proto/…
//   dist/apps/<db-app>/apps/<db-app>/migrations/…
//
// npm packages are not bundled: they come from the node_modules above dist/
// (the repository's, or the image's production-only install).
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformFileSync } from '@swc/core';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const app = process.argv[2];
if (!app || !existsSync(join(root, 'apps', app, 'src', 'main.ts'))) {
  console.error(`usage: node tools/build/build-service.mjs <app>  (no apps/${app ?? '<app>'}/src/main.ts)`);
  process.exit(2);
}

/** Directories copied next to a reached project's src/, because code reads them at run time. */
const RUNTIME_ASSETS = ['proto', 'migrations'];

const { compilerOptions } = JSON.parse(readFileSync(join(root, 'tsconfig.base.json'), 'utf8'));
// The image installs `dependencies` only (npm ci --omit=dev): a package the built code requires
// must be listed there, not merely reachable through a devDependency.
const { dependencies = {} } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const outRoot = join(root, 'dist', 'apps', app);

function swcOptions(file, outFile) {
  return {
    filename: file,
    swcrc: false,
    configFile: false,
    sourceMaps: true,
    // Sources are named relative to the map, so stack traces point at the .ts files.
    sourceFileName: relative(dirname(outFile), file),
    jsc: {
      target: 'es2022',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
      // SWC rewrites `@sotto/*` imports to paths relative to the importing file.
      baseUrl: resolve(root, compilerOptions.baseUrl ?? '.'),
      paths: compilerOptions.paths,
      keepClassNames: true,
    },
    module: { type: 'commonjs', strict: false, noInterop: false },
  };
}

/** The .ts (or .js/.json) file a relative specifier names, as Node and TypeScript resolve it. */
function resolveSource(fromDir, specifier) {
  const base = resolve(fromDir, specifier);
  const candidates = [
    base,
    `${base}.ts`,
    join(base, 'index.ts'),
    base.replace(/\.js$/, '.ts'),
    `${base}.js`,
    `${base}.json`,
    join(base, 'index.js'),
  ];
  const found = candidates.find((candidate) => existsSync(candidate) && statSync(candidate).isFile());
  if (!found) throw new Error(`cannot resolve '${specifier}' from ${relative(root, fromDir)}`);
  return found;
}

/** The nearest directory above `file` with a project.json: the Nx project the file belongs to. */
function projectRootOf(file) {
  for (let dir = dirname(file); dir.startsWith(root) && dir !== root; dir = dirname(dir)) {
    if (existsSync(join(dir, 'project.json'))) return dir;
  }
  return undefined;
}

rmSync(outRoot, { recursive: true, force: true });

const queue = [join(root, 'apps', app, 'src', 'main.ts')];
const seen = new Set(queue);
const projects = new Set();
const REQUIRE = /\brequire\((["'])([^"']+)\1\)/g;
const undeclared = new Map();

while (queue.length > 0) {
  const file = queue.shift();
  if (!file.startsWith(`${root}/`) || file.includes('/node_modules/')) {
    throw new Error(`${relative(root, file)} is outside the workspace sources`);
  }
  const projectRoot = projectRootOf(file);
  if (projectRoot) projects.add(projectRoot);

  const rel = relative(root, file);
  if (!file.endsWith('.ts')) {
    mkdirSync(dirname(join(outRoot, rel)), { recursive: true });
    cpSync(file, join(outRoot, rel));
    continue;
  }

  const outFile = join(outRoot, rel.replace(/\.ts$/, '.js'));
  const { code, map } = transformFileSync(file, swcOptions(file, outFile));
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${code}\n//# sourceMappingURL=${basename(outFile)}.map\n`);
  writeFileSync(`${outFile}.map`, map);

  for (const [, , specifier] of code.matchAll(REQUIRE)) {
    if (!specifier.startsWith('.')) {
      const name = specifier
        .split('/')
        .slice(0, specifier.startsWith('@') ? 2 : 1)
        .join('/');
      if (!specifier.startsWith('node:') && !builtinModules.includes(name) && !(name in dependencies)) {
        undeclared.set(name, rel);
      }
      continue;
    }
    const dependency = resolveSource(dirname(file), specifier);
    if (!seen.has(dependency)) {
      seen.add(dependency);
      queue.push(dependency);
    }
  }
}

if (undeclared.size > 0) {
  for (const [name, file] of undeclared) {
    console.error(`${app}: ${file} requires '${name}', which is not in package.json "dependencies"`);
  }
  process.exit(1);
}

for (const projectRoot of projects) {
  for (const asset of RUNTIME_ASSETS) {
    const from = join(projectRoot, asset);
    if (existsSync(from)) cpSync(from, join(outRoot, relative(root, from)), { recursive: true });
  }
}

console.log(
  `${app}: ${seen.size} files from ${projects.size} projects -> ${relative(root, outRoot)}/apps/${app}/src/main.js`,
);
