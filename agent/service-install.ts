import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErpEdgeError } from '../common/errors.js';

/**
 * `edge-agent install-service` / `uninstall-service`: runs the platform's installer that ships
 * beside the packaged executable (dist/package/<target>/: install.sh and uninstall.sh on Linux,
 * install.cmd and uninstall.cmd on Windows), so a site needs to know one command. From a source
 * checkout there is nothing to install as a service: the installers install the packaged executable.
 */
export function runServiceInstaller(action: 'install' | 'uninstall', args: readonly string[], execPath = process.execPath, platform: NodeJS.Platform = process.platform): number {
  const installer = INSTALLERS[platform];
  if (!installer) throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${action}-service is not available on ${platform} (Linux and Windows only)`);
  const dir = dirname(execPath);
  const script = join(dir, `${action}.${installer.ext}`);
  if (!existsSync(script) || !existsSync(join(dir, installer.exe))) {
    throw new ErpEdgeError(
      'ERP_SERVICE_INSTALL',
      `${action}-service runs ${action}.${installer.ext} beside the packaged ${installer.exe} executable, and there is none in ${dir}; build the executable with \`npm run package\` and run it from dist/package/${installer.target}/`,
      { dir },
    );
  }
  const unsupported = installer.options ? args.filter((a) => a.startsWith('--') && !installer.options!.includes(a)) : [];
  if (unsupported.length > 0) throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${unsupported.join(', ')}: not an option of ${action}-service on ${platform}`, { unsupported });
  const [cmd, cmdArgs, verbatim] = installer.run(script, [...(action === 'install' && installer.from ? ['--from', dir] : []), ...args]);
  const r = spawnSync(cmd, cmdArgs, { stdio: 'inherit', windowsVerbatimArguments: verbatim });
  if (r.error) throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${script} could not be run: ${r.error.message}`, { script }, { cause: r.error });
  return r.status ?? 1;
}

interface Installer {
  target: string;
  exe: string;
  ext: string;
  /** The installer's options (undefined: every option installerArgs gives). */
  options?: readonly string[];
  /** Whether it takes `--from DIR` (where the executable is). */
  from: boolean;
  /** The command line: program, arguments, whether they are passed as they are (cmd.exe's own quoting). */
  run(script: string, args: string[]): [string, string[], boolean];
}

const INSTALLERS: Partial<Record<NodeJS.Platform, Installer>> = {
  linux: { target: 'linux-x64', exe: 'edge-agent', ext: 'sh', from: true, run: (script, args) => ['/bin/sh', [script, ...args], false] },
  // install.cmd takes its files from its own folder (no --from); folder permissions for drop
  // shares are granted by hand (README), not by --rw-path.
  win32: {
    target: 'win-x64',
    exe: 'edge-agent.exe',
    ext: 'cmd',
    options: ['--site', '--agent', '--broker', '--no-start', '--purge'],
    from: false,
    // cmd /s /c "<line>": cmd strips the outer quotes only, so a script under "Program Files" and
    // quoted arguments survive (what Node itself does for shell: true).
    run: (script, args) => [process.env['ComSpec'] ?? 'cmd.exe', ['/d', '/s', '/c', `"${[script, ...args].map(cmdQuote).join(' ')}"`], true],
  },
};

/** An argument for cmd.exe: quoted when it has spaces or characters cmd would act on. */
export function cmdQuote(arg: string): string {
  if (/["%^!]/.test(arg)) throw new ErpEdgeError('ERP_SERVICE_INSTALL', `${arg}: the characters " % ^ ! cannot be passed to install.cmd; edit the config after install instead`);
  return /[\s&|<>()]/.test(arg) || arg === '' ? `"${arg}"` : arg;
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
