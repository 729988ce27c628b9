import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const started = globalThis.__sottoTestInfra;
  if (!started) return;
  globalThis.__sottoTestInfra = undefined;
  await started.infra.stop();
  rmSync(started.workDir, { recursive: true, force: true });
}
