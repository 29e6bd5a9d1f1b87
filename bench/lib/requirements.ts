import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Full path of an executable on PATH or in the sbin folders (Debian puts mosquitto in /usr/sbin). */
export function findBinary(name: string): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  return ['/usr/sbin', '/usr/local/sbin', '/sbin'].map((d) => `${d}/${name}`).find((p) => existsSync(p));
}

/**
 * Real parts the tests need. On a developer's machine a missing one skips its tests with a
 * loud message; under CI (CI=true) it is a failure, never a silent skip.
 */
export function requireBinary(name: string, install: string): boolean {
  if (findBinary(name)) return true;
  const message = `${name} is not installed: the tests that spawn it cannot run. Install it with: ${install}`;
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  console.warn(`SKIPPING: ${message}`);
  return false;
}

export const MOSQUITTO_INSTALL = 'sudo apt-get install -y mosquitto (or run .ci/run, which installs it)';

export function mosquittoBinary(): string {
  const bin = findBinary('mosquitto');
  if (!bin) throw new Error(`mosquitto is not installed; ${MOSQUITTO_INSTALL}`);
  return bin;
}
