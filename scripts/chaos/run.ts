/**
 * npm run chaos -- --rounds N --seed S [--dir D]
 *
 * Real processes (Mosquitto, relay, agent) under a seeded schedule of faults; exits non-zero on any
 * loss, duplicate, reordering or a fault not recovered from. See README "Reliability".
 */
import { parseArgs } from 'node:util';
import { formatSummary, passed, runChaos } from './chaos.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    seed: { type: 'string', default: '1' },
    dir: { type: 'string' },
  },
});
const rounds = Number(values.rounds);
const seed = Number(values.seed);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(seed)) {
  console.error('usage: npm run chaos -- --rounds N --seed S [--dir D]  (N ≥ 1, S an integer)');
  process.exit(2);
}
// Ctrl-C (or SIGTERM) ends the rounds; the quiet period and the check still run. A second one exits.
const stop = new AbortController();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  });
}
const summary = await runChaos({ rounds, seed, signal: stop.signal, ...(values.dir ? { dir: values.dir } : {}) });
console.log(formatSummary(summary));
process.exit(passed(summary) ? 0 : 1);
