import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErpEdgeError } from '../common/errors.js';

/**
 * `edge-agent install-service` / `uninstall-service`: runs the platform's installer that ships
 * beside the packaged executable (dist/package/<target>/: install.sh and uninstall.sh on Linux),
 * so a site needs to know one command. From a source checkout there is nothing to install as a
 * service: the installers install the packaged executable.
 */
export function runServiceInstaller(action: 'install' | 'uninstall', args: readonly string[], execPath = process.execPath): number {
  if (process.platform !== 'linux') {
    throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${action}-service is not available on ${process.platform} yet (Linux only; Windows is to come)`);
  }
  const dir = dirname(execPath);
  const script = join(dir, `${action}.sh`);
  if (!existsSync(script) || !existsSync(join(dir, 'edge-agent'))) {
    throw new ErpEdgeError(
      'ERP_SERVICE_INSTALL',
      `${action}-service runs ${action}.sh beside the packaged edge-agent executable, and there is none in ${dir}; build the executable with \`npm run package\` and run it from dist/package/linux-x64/`,
      { dir },
    );
  }
  const r = spawnSync('/bin/sh', [script, ...(action === 'install' ? ['--from', dir] : []), ...args], { stdio: 'inherit' });
  if (r.error) throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${script} could not be run: ${r.error.message}`, { script }, { cause: r.error });
  return r.status ?? 1;
}

/** The installer's options, from the CLI's parsed flags, in the installer's own spelling. */
export function installerArgs(v: { site?: string; agent?: string; broker?: string; root?: string; 'rw-path'?: string[]; 'no-start'?: boolean; purge?: boolean }): string[] {
  const out: string[] = [];
  for (const k of ['site', 'agent', 'broker', 'root'] as const) if (v[k] !== undefined) out.push(`--${k}`, v[k]!);
  for (const p of v['rw-path'] ?? []) out.push('--rw-path', p);
  if (v['no-start']) out.push('--no-start');
  if (v.purge) out.push('--purge');
  return out;
}
