import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/<bin>.js <args>` to completion (`nodeArgs`: flags for node itself, e.g. `--import`). */
export function runCli(bin: 'edge-agent' | 'cloud-relay', args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): CliResult {
  const r = spawnSync(process.execPath, [...nodeArgs, resolve(ROOT, 'bin', `${bin}.js`), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 30_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** runCli without blocking this process: needed when the agent it talks to runs inside the test. */
export async function runCliAsync(bin: 'edge-agent' | 'cloud-relay', args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runCliFor(bin, args, 30_000, env);
}

/**
 * Runs a long-lived CLI until `until` holds for what it printed (or for `ms` at most), then stops it
 * with SIGTERM; returns all it printed.
 */
export async function runCliFor(
  bin: 'edge-agent' | 'cloud-relay',
  args: string[],
  ms: number,
  env: NodeJS.ProcessEnv = {},
  until?: (output: string) => boolean,
): Promise<CliResult> {
  const proc = spawn(process.execPath, [resolve(ROOT, 'bin', `${bin}.js`), ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let stdout = '';
  let stderr = '';
  const check = () => {
    if (until?.(stdout + stderr)) proc.kill('SIGTERM');
  };
  proc.stdout.on('data', (d) => ((stdout += String(d)), check()));
  proc.stderr.on('data', (d) => ((stderr += String(d)), check()));
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const timer = setTimeout(() => proc.kill('SIGTERM'), ms);
  const status = await exited;
  clearTimeout(timer);
  return { status, stdout, stderr };
}
