import { spawnSync } from 'node:child_process';
import { findBinary, requireBinary } from './requirements.js';

export const PROMTOOL_INSTALL = 'sudo apt-get install -y prometheus (or npm test, whose ensure-test-deps installs it)';

/** Whether promtool is there; under CI=true a missing promtool throws (a failure, never a skip). */
export function hasPromtool(): boolean {
  return requireBinary('promtool', PROMTOOL_INSTALL);
}

/** Runs promtool with `args` (and `input` on stdin); its exit status and output together. */
export function promtool(args: string[], input?: string, cwd?: string): { status: number | null; output: string } {
  const bin = findBinary('promtool');
  if (!bin) throw new Error(`promtool is not installed; ${PROMTOOL_INSTALL}`);
  const r = spawnSync(bin, args, { input, cwd, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** `promtool check metrics` on an exposition text: ok, and what it printed (lint problems). */
export function promtoolCheckMetrics(text: string): { ok: boolean; output: string } {
  const r = promtool(['check', 'metrics'], text);
  return { ok: r.status === 0, output: r.output };
}
