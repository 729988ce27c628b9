// Rewrites breaking-baseline.json, the contracts `buf breaking` compares
// against, from the .proto files as they are now. Run it (through
// `nx run contracts:breaking-baseline`) only when a breaking change is meant
// and its consequences are handled; the diff shows what changed.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const contracts = join(dirname(fileURLToPath(import.meta.url)), '..');
const buf = createRequire(import.meta.url).resolve('@bufbuild/buf/bin/buf');
const scratch = mkdtempSync(join(tmpdir(), 'sotto-buf-image-'));
try {
  const image = join(scratch, 'image.json');
  execFileSync(process.execPath, [buf, 'build', '--exclude-source-info', '-o', image], { cwd: contracts });
  // One field per line, so a change to the baseline reads as a diff.
  const pretty = `${JSON.stringify(JSON.parse(readFileSync(image, 'utf8')), null, 1)}\n`;
  writeFileSync(join(contracts, 'breaking-baseline.json'), pretty);
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
