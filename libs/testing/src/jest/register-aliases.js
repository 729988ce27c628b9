// Jest loads global setup and teardown with Node's own module resolver, which
// knows nothing of the workspace's `@sotto/*` path aliases (test files get
// them from moduleNameMapper instead). This maps them the same way, from
// tsconfig.base.json, and lets TypeScript sources load through SWC.
const Module = require('node:module');
const { join } = require('node:path');

const root = join(__dirname, '../../../..');
const { compilerOptions } = require(join(root, 'tsconfig.base.json'));

const exact = new Map();
const prefixes = [];
for (const [alias, [target]] of Object.entries(compilerOptions.paths)) {
  if (alias.endsWith('/*')) prefixes.push([alias.slice(0, -1), join(root, target.slice(0, -1))]);
  else exact.set(alias, join(root, target));
}

const resolve = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  let mapped = exact.get(request);
  if (mapped === undefined) {
    const prefix = prefixes.find(([from]) => request.startsWith(from));
    if (prefix) mapped = prefix[1] + request.slice(prefix[0].length);
  }
  return resolve.call(this, mapped ?? request, ...rest);
};

process.env.SWC_NODE_PROJECT = process.env.SWC_NODE_PROJECT || join(root, 'tsconfig.json');
require('@swc-node/register');
