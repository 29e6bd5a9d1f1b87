import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'vitest';
import { waitFor } from './net.js';

/**
 * A collector in a child process of its own (a script under test/helpers run with tsx), for tests
 * that kill it with -9. Resolves once it prints `started`; `onSpawn` gets the process at once, so
 * the test can kill it even if it never gets there.
 */
export async function startCollectorProcess(script: string, args: readonly string[], onSpawn: (child: ChildProcess) => void): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  onSpawn(child);
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  await waitFor('collector started', () => out.includes('started') || child.exitCode !== null, 30_000);
  expect(child.exitCode).toBeNull();
  return child;
}

/** SIGKILL, and wait until it is gone (nothing if it already is). */
export async function killHard(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}
