/**
 * A PostgreSQL cluster of the test's own (initdb + pg_ctl from the installed PostgreSQL, in a
 * temp folder, on a free port), for tests that stop the server or need special settings (e.g.
 * wal_level=logical) without touching the machine's shared one. initdb refuses to run as root:
 * as root the cluster runs as the `postgres` system user.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';

export interface PgCluster {
  port: number;
  connection: { host: string; port: number; database: string; user: string; password: string };
  start(): void;
  stop(): void;
  destroy(): void;
}

function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const dir = versions.map((v) => join(root, v, 'bin')).find((d) => existsSync(join(d, 'pg_ctl')));
  if (!dir) throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)');
  return dir;
}

export async function startPgCluster(settings: Record<string, string> = {}): Promise<PgCluster> {
  const bin = binDir();
  const base = mkdtempSync(join(tmpdir(), 'erp-edge-pg-'));
  const data = join(base, 'data');
  const asRoot = process.getuid?.() === 0;
  const run = (cmd: string, args: string[]) => {
    const full = join(bin, cmd);
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', full, ...args], { stdio: 'pipe' });
    else execFileSync(full, args, { stdio: 'pipe' });
  };
  if (asRoot) {
    const { uid, gid } = { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) };
    chownSync(base, uid, gid);
    chmodSync(base, 0o700);
  }
  run('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
  const port = await freePort();
  const conf = { port: String(port), listen_addresses: "'127.0.0.1'", unix_socket_directories: `'${base}'`, fsync: 'off', ...settings };
  writeFileSync(join(data, 'postgresql.auto.conf'), Object.entries(conf).map(([k, v]) => `${k} = ${v}`).join('\n') + '\n');
  const log = join(base, 'server.log');
  const cluster: PgCluster = {
    port,
    connection: { host: '127.0.0.1', port, database: 'postgres', user: 'postgres', password: '' },
    start: () => run('pg_ctl', ['-D', data, '-l', log, '-w', '-t', '30', 'start']),
    stop: () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']),
    destroy() {
      try {
        cluster.stop();
      } catch {
        // already stopped
      }
      rmSync(base, { recursive: true, force: true });
    },
  };
  cluster.start();
  return cluster;
}
