import { spawn, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';

/**
 * A Node script run to completion with this process's Node, without blocking this process (vitest's
 * worker must keep answering its RPC): its exit status and its stdout and stderr together.
 */
export async function runToEnd(args: string[], opts: SpawnOptions): Promise<{ status: number | null; output: string }> {
  const proc = spawn(process.execPath, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (d) => (output += String(d)));
  proc.stderr!.on('data', (d) => (output += String(d)));
  const [status] = (await once(proc, 'exit')) as [number | null];
  return { status, output };
}
