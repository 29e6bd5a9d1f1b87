/**
 * The agent's instructions per record, this tree against a baseline, counted by valgrind:
 *
 *   npx tsx bench/agent-instructions.ts [--baseline 6d15cf2] [--baseline-flags own|current] [--small 20000] [--large 60000] [--only now|baseline]
 *
 * Each revision's compiled agent (synthetic collector, durable-e2e's configuration and Node flags)
 * runs under `valgrind --tool=callgrind` against that revision's relay (not counted) until the relay
 * holds every record; it is run for `small` and for `large` records, and the difference of the two
 * totals over the difference of the counts is the cost of a record: start-up and shutdown fall
 * out. Instruction counts repeat within a percent or two on a busy machine, where CPU seconds and
 * throughput do not; the agent's pace (batches, transactions) does not depend on the machine
 * either, since the collector appends 1 000 records a transaction and the forwarder sends 1 000 a
 * batch.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AGENT_NODE_FLAGS } from '../agent/runtime-flags.js';
import { prepareBaseline } from './lib/baseline.js';
import { MosquittoProcess } from './lib/mosquitto.js';
import { DETERMINISTIC_V8 } from './lib/valgrind.js';
import { agentConfig, DIST, startRelay, waitStored } from './lib/pipeline.js';
import type { Dist } from './types.js';

const { values } = parseArgs({
  options: {
    baseline: { type: 'string', default: '6d15cf2' },
    /** The baseline's agent with its release's Node flags (own) or this tree's (current). */
    'baseline-flags': { type: 'string', default: 'own' },
    small: { type: 'string', default: '20000' },
    large: { type: 'string', default: '60000' },
    only: { type: 'string' },
    /** Copy the larger run's dump to `<keep>-<side>.out` (for callgrind_annotate). */
    keep: { type: 'string' },
  },
});

const base = prepareBaseline(values.baseline!, values['baseline-flags'] === 'current' ? 'current' : 'own');
const sides: { name: string; dist: Dist }[] = [
  { name: 'now', dist: DIST },
  { name: `baseline ${values.baseline}`, dist: base.dist },
].filter((s) => !values.only || s.name.startsWith(values.only));
const small = Number(values.small);
const large = Number(values.large);

for (const s of sides) {
  const a = await countRun(s.dist, small);
  const b = await countRun(s.dist, large, values.keep && `${values.keep}-${s.name.split(' ')[0]}.out`);
  const per100k = ((b - a) / (large - small)) * 100_000;
  console.log(`${s.name.padEnd(20)} agent: ${(a / 1e9).toFixed(3)} G for ${small}, ${(b / 1e9).toFixed(3)} G for ${large} → ${(per100k / 1e9).toFixed(3)} G instructions per 100k records`);
}

/** Instructions of one agent process that captured and forwarded `n` records. */
async function countRun(dist: Dist, n: number, keep?: string): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-instr-'));
  const broker = await MosquittoProcess.start(dir);
  const relay = await startRelay(join(dir, 'relay'), broker.url, true, dist);
  const conf = agentConfig(join(dir, 'agent'), { brokerUrl: broker.url, total: n, rate: 0, batch: 1_000, httpEndpoints: dist === DIST });
  const out = join(dir, 'callgrind.out');
  const agent = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, ...DETERMINISTIC_V8, ...(dist.agentFlags ?? AGENT_NODE_FLAGS), dist.agent, 'run', '--config', conf], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  agent.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  try {
    await waitStored(relay, n, 1_800_000);
    const exited = once(agent, 'exit');
    agent.kill('SIGTERM');
    await exited;
    if (keep) copyFileSync(out, keep);
    const m = /^(?:summary|totals): (\d+)/m.exec(readFileSync(out, 'utf8'));
    if (!m) throw new Error(`no callgrind total in ${out}`);
    return Number(m[1]);
  } catch (err) {
    throw new Error(`${(err as Error).message}\nagent stderr: ${stderr}`);
  } finally {
    if (agent.exitCode === null && agent.signalCode === null) agent.kill('SIGKILL');
    await relay.proc.kill('SIGTERM');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
