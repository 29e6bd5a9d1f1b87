import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';

const CLI = resolve(import.meta.dirname, '../../common/cli.ts');
const { dir, cleanup } = makeTempDir('erp-edge-cli-');
afterAll(() => cleanup());

/**
 * A service whose start waits for a line on stdin: the test decides when start ends, so a signal
 * lands inside start-up every time (no timing guess).
 */
function serviceScript(failStart: boolean): string {
  const path = join(dir, failStart ? 'fails.mts' : 'service.mts');
  writeFileSync(
    path,
    `import { runService } from ${JSON.stringify(CLI)};
import { once } from 'node:events';
const logger = { fatal: () => {} } as never;
await runService(logger, 'test service', async () => {
  // runService puts its handlers in place right after calling start: say "starting" after that.
  await new Promise((r) => setImmediate(r));
  process.stdout.write('starting\\n');
  await once(process.stdin, 'data');
  ${failStart ? "throw new Error('ERP_TEST start failed');" : ''}
  process.stdout.write('started\\n');
  return { stop: async () => { process.stdout.write('stopped\\n'); } };
});
`,
  );
  return path;
}

async function signalDuringStart(failStart: boolean) {
  const proc = spawn(process.execPath, ['--import', 'tsx', serviceScript(failStart)], { cwd: resolve(import.meta.dirname, '../..'), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d) => (out += String(d)));
  proc.stderr.on('data', (d) => (out += String(d)));
  const exited = once(proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let dead = false;
  void exited.then(() => (dead = true));
  while (!out.includes('starting')) {
    if (dead) throw new Error(`the test service ended before starting:\n${out}`);
    await Promise.race([once(proc.stdout, 'data'), exited]);
  }
  proc.kill('SIGTERM');
  // Without a handler in place the kernel's default action ends the process at once, before it
  // reads the line below: exit by signal, whatever the order the child sees the two in.
  proc.stdin.write('go\n');
  const [code, signal] = await exited;
  return { code, signal, out };
}

describe('runService', () => {
  it('stops cleanly on a SIGTERM that arrives while the service is still starting (exit 0, not killed by the signal)', async () => {
    const r = await signalDuringStart(false);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.out).toBe('starting\nstarted\nstopped\n');
  });

  it('a start that fails after a SIGTERM still exits 1 with its error', async () => {
    const r = await signalDuringStart(true);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.out).toContain('ERP_TEST start failed');
  });
});
