import { spawnSync } from 'node:child_process';
import { findBinary, requireBinary } from './requirements.js';

export const PROMTOOL_INSTALL = "sudo apt-get install -y prometheus (Debian's package ships promtool; scripts/ensure-test-deps.mjs installs it)";

/**
 * Whether promtool can check metrics here: false (with a loud skip message) on a developer's
 * machine without it; under CI=true a missing promtool throws, so the run fails instead of skipping.
 */
export function havePromtool(): boolean {
  return requireBinary('promtool', PROMTOOL_INSTALL);
}

/** `promtool check metrics` on an exposition text: its exit status and what it printed (lint problems). */
export function promtoolCheckMetrics(text: string): { ok: boolean; output: string } {
  const bin = findBinary('promtool');
  if (!bin) throw new Error(`promtool is not installed; ${PROMTOOL_INSTALL}`);
  const r = spawnSync(bin, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}
