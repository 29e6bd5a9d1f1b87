import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { linuxCacheReady } from '../../installer/package-cache.js';
import { runToEnd } from './run-to-end.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

/**
 * The packaged linux-x64 executables, built by this run of the tests into `out` with the registry
 * unreachable (npm_config_offline, a registry on a closed port): what the acceptance asks of a
 * build. That needs the packaging cache (.cache/packaging), which `npm run package` fills once
 * (Node 24 and postject fetched, better-sqlite3 compiled for it: 3 to 7 minutes on a 2-core VM).
 * Without the cache the tests skip locally with a message; under CI=true they fill it first (once
 * per machine: later runs find it). Returns undefined when skipped.
 */
export async function buildPackagedOffline(out: string): Promise<{ dir: string; seconds: number } | undefined> {
  if (!linuxCacheReady()) {
    const message = 'the packaging cache (.cache/packaging) is empty: run `npm run package` once (fetches Node 24 and postject, compiles better-sqlite3 for it)';
    if (process.env.CI !== 'true') {
      console.warn(`SKIPPING: ${message}`);
      return undefined;
    }
    // CI: fill it now, online (the README's test command is all CI runs); the build below is offline.
    console.log(`CI: ${message}; filling it now`);
    const fill = await runToEnd([TSX, 'scripts/package.ts', 'linux-x64'], { cwd: ROOT, timeout: 12 * 60_000, env: process.env });
    if (fill.status !== 0 || !linuxCacheReady()) throw new Error(`CI: filling the packaging cache failed:\n${fill.output}`);
  }
  const t = Date.now();
  const r = await runToEnd([TSX, 'scripts/package.ts', 'linux-x64'], {
    cwd: ROOT,
    timeout: 5 * 60_000,
    env: { ...process.env, ERP_EDGE_PACKAGE_OUT: out, npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' },
  });
  if (r.status !== 0) throw new Error(`offline packaging failed:\n${r.output}`);
  return { dir: join(out, 'linux-x64'), seconds: (Date.now() - t) / 1000 };
}

/** Commands a box without Node.js has: /usr/bin and /bin linked into one folder, minus node, npm and friends. */
export function pathWithoutNode(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const skip = new Set(['node', 'nodejs', 'npm', 'npx', 'corepack', 'tsx']);
  const seen = new Set<string>();
  for (const from of ['/usr/bin', '/bin']) {
    for (const name of readdirSync(from)) {
      if (skip.has(name) || seen.has(name)) continue;
      seen.add(name);
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

/** A packaged executable running as a service would: its own minimal environment, output to a log file. */
export class PackagedProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;

  constructor(exe: string, args: string[], env: NodeJS.ProcessEnv, logPath: string) {
    const log = createWriteStream(logPath, { flags: 'a' });
    this.proc = spawn(exe, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.pipe(log);
    this.proc.stderr!.pipe(log);
    this.exited = once(this.proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  }

  /** SIGTERM (what systemd sends on stop); resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const [code] = await this.exited;
    return code;
  }
}
