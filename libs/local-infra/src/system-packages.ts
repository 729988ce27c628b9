import { isRoot, javaBinary, postgresBinDir, run, which } from './system';

/**
 * What local infrastructure needs from the OS, as (is it there?, Debian package that provides it).
 * Keep in sync with tools/ci/install-system-deps.sh.
 */
const REQUIREMENTS: ReadonlyArray<{ present: () => boolean; pkg: string }> = [
  { present: () => which('redis-server') !== undefined, pkg: 'redis-server' },
  { present: () => postgresBinDir() !== undefined, pkg: 'postgresql' },
  { present: () => which('softhsm2-util') !== undefined, pkg: 'softhsm2' },
  { present: () => which('kcat') !== undefined, pkg: 'kcat' },
  { present: () => javaBinary() !== undefined, pkg: 'default-jre-headless' },
  { present: () => which('mvn') !== undefined, pkg: 'maven' },
  // Not to make certificates (that is done in-process): the tests check the gateway with s_client.
  { present: () => which('openssl') !== undefined, pkg: 'openssl' },
];

export function missingSystemPackages(): string[] {
  return REQUIREMENTS.filter((r) => !r.present()).map((r) => r.pkg);
}

/**
 * Installs missing packages with apt-get when running as root; otherwise throws an error naming
 * exactly the packages to install.
 */
export async function ensureSystemPackages(): Promise<void> {
  await installDebianPackages(missingSystemPackages(), missingSystemPackages);
}

/**
 * Installs `packages` with apt-get when running as root; otherwise throws an error naming exactly the
 * packages to install. `stillMissing` says, afterwards, which of them did not provide what was needed.
 */
export async function installDebianPackages(packages: string[], stillMissing: () => string[]): Promise<void> {
  if (packages.length === 0) return;
  const command = `apt-get install -y ${packages.join(' ')}`;
  if (!isRoot() || which('apt-get') === undefined) {
    throw new Error(`missing system packages: ${packages.join(' ')}. Install them with: sudo ${command}`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = await run('apt-get', ['update'], { env });
  if (update.code !== 0) {
    throw new Error(`apt-get update failed (exit ${String(update.code)}):\n${tail(update.output)}`);
  }
  const install = await run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { env });
  if (install.code !== 0) {
    throw new Error(`${command} failed (exit ${String(install.code)}):\n${tail(install.output)}`);
  }
  const still = stillMissing();
  if (still.length > 0) {
    throw new Error(`still missing after apt-get install: ${still.join(' ')}`);
  }
}

function tail(output: string): string {
  return output.trimEnd().split('\n').slice(-30).join('\n');
}
