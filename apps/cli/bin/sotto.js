#!/usr/bin/env node
// The `sotto` command. Runs the CLI from its TypeScript sources, as every
// Sotto process does in this repository.
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { execFileSync } = require('node:child_process');

const root = join(__dirname, '..', '..', '..');
if (!existsSync(join(root, 'libs/contracts/src/generated'))) {
  // Generated gRPC code is not committed; make it on first use.
  execFileSync(process.execPath, [require.resolve('@bufbuild/buf/bin/buf'), 'generate'], {
    cwd: join(root, 'libs/contracts'),
    stdio: 'inherit',
  });
}
process.env.SWC_NODE_PROJECT = process.env.SWC_NODE_PROJECT || join(root, 'tsconfig.json');
require('@swc-node/register');
require('../src/main.ts');
