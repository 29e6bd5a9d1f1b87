import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/<bin>.js <args>` to completion. */
export function runCli(bin: 'edge-agent' | 'cloud-relay', args: string[], env: NodeJS.ProcessEnv = {}): CliResult {
  const r = spawnSync(process.execPath, [resolve(ROOT, 'bin', `${bin}.js`), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs a long-lived CLI for `ms`, then stops it with SIGTERM; returns all it printed. */
export async function runCliFor(bin: 'edge-agent' | 'cloud-relay', args: string[], ms: number, env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const proc = spawn(process.execPath, [resolve(ROOT, 'bin', `${bin}.js`), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += String(d)));
  proc.stderr.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const timer = setTimeout(() => proc.kill('SIGTERM'), ms);
  const status = await exited;
  clearTimeout(timer);
  return { status, stdout, stderr };
}
