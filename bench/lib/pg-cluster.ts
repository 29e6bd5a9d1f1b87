/**
 * A PostgreSQL cluster of the bench's own (initdb + pg_ctl from the installed PostgreSQL, in a
 * temp folder, on a free port), for scenarios that need settings the machine's shared server does
 * not have (wal_level=logical). initdb refuses to run as root: as root the cluster runs as the
 * `postgres` system user (`runuser -u postgres --`). The tests use it too (test/helpers/pg-cluster.ts).
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';
import { ScenarioUnavailable } from '../types.js';

export interface BenchPgCluster {
  port: number;
  version: string;
  connection: { host: string; port: number; database: string; user: string; password: string };
  /** Starts it again after stop() (tests stop the server under a collector). */
  start(): void;
  stop(): void;
  destroy(): void;
}

function binDir(): { dir: string; version: string } {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const version = versions.find((v) => existsSync(join(root, v, 'bin', 'pg_ctl')));
  if (!version) throw new ScenarioUnavailable('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  return { dir: join(root, version, 'bin'), version };
}

export async function startPgCluster(settings: Record<string, string> = {}): Promise<BenchPgCluster> {
  const { dir: bin, version } = binDir();
  const base = mkdtempSync(join(tmpdir(), 'erp-edge-bench-pg-'));
  const data = join(base, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = join(bin, cmd);
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(base, uid, gid);
    chmodSync(base, 0o700);
  }
  try {
    run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw new ScenarioUnavailable(`initdb failed: ${(err as Error).message}`);
  }
  const port = await freePort();
  const conf = { port: String(port), listen_addresses: "'127.0.0.1'", unix_socket_directories: `'${base}'`, ...settings };
  writeFileSync(join(data, 'postgresql.auto.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  const log = join(base, 'server.log');
  const stop = () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  const start = () => run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', 'start']);
  try {
    start();
  } catch (err) {
    rmSync(base, { recursive: true, force: true });
    throw new ScenarioUnavailable(`pg_ctl start failed: ${(err as Error).message}`);
  }
  return {
    port,
    version,
    connection: { host: '127.0.0.1', port, database: 'postgres', user: 'postgres', password: '' },
    start,
    stop,
    destroy() {
      try {
        stop();
      } catch {
        // already stopped
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
}
