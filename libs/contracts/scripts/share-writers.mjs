// Run after `buf generate`: the grpc-js service definitions ts-proto writes
// serialize each message with a new BinaryWriter and copy the result into a
// Buffer (`Buffer.from(X.encode(value).finish())`). This rewrites each of them
// to `encodeToBuffer(X, value)` (src/wire-encoding.ts), which encodes through
// one shared writer and copies once. Fails if a generated service has a
// serializer of another shape, so a new ts-proto cannot silently undo it.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
const generated = join(src, 'generated');
const SERIALIZER = /Buffer\.from\((\w+)\.encode\(value\)\.finish\(\)\)/g;

function* files(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.name.endsWith('.ts')) yield path;
  }
}

let rewritten = 0;
for (const file of files(generated)) {
  const text = readFileSync(file, 'utf8');
  if (!/Serialize: \(value/.test(text)) continue;
  const next = text.replace(SERIALIZER, (_, codec) => `encodeToBuffer(${codec}, value)`);
  const left = next.match(/Serialize: \(value: \w+\): Buffer =>\s*Buffer\.from/);
  if (left) throw new Error(`${relative(src, file)}: a serializer not of the form ${SERIALIZER.source}`);
  let from = relative(dirname(file), join(src, 'wire-encoding'));
  if (!from.startsWith('.')) from = `./${from}`;
  const imports = `import { encodeToBuffer } from "${from}";\n`;
  const firstImport = next.indexOf('\nimport ');
  writeFileSync(file, `${next.slice(0, firstImport + 1)}${imports}${next.slice(firstImport + 1)}`);
  rewritten++;
}
if (rewritten === 0) throw new Error('no generated gRPC service definitions found to rewrite');
console.log(`share-writers: ${rewritten} generated service files serialize through the shared writer`);
