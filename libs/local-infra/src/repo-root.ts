import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

function findUp(marker: string): string | undefined {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, marker))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * The monorepo root: the nearest directory above this file that contains nx.json
 * (tsconfig.base.json as a fallback, so a checkout without nx.json still works).
 */
export function repoRoot(): string {
  if (cached !== undefined) return cached;
  const found = findUp('nx.json') ?? findUp('tsconfig.base.json');
  if (found === undefined) {
    throw new Error(`could not find the monorepo root (a directory containing nx.json) above ${__dirname}`);
  }
  cached = found;
  return found;
}
