/**
 * The relay's cost per record, this tree against a baseline, on the exact messages each agent sends:
 *
 *   npx tsx bench/relay-replay.ts capture --baseline 6d15cf2 --events 100000 --out /tmp/rr
 *   npx tsx bench/relay-replay.ts replay  --baseline 6d15cf2 --in /tmp/rr [--callgrind] [--warmup 20]
 *
 * `capture` runs each revision's compiled agent (synthetic collector, as durable-e2e) against its
 * own relay and records every events message it publishes (a wildcard subscriber beside the relay):
 * `<out>/now.jsonl` and `<out>/baseline.jsonl`, one `{topic, payload}` (base64) a line.
 *
 * `replay` starts each revision's compiled relay on a fresh store and its own Mosquitto and
 * publishes that revision's messages one at a time, each after the ack of the one before (so every
 * batch is its own transaction: the same work every run, whatever the machine is doing). It prints
 * the relay's CPU seconds per 100 000 records after `--warmup` messages and, with `--callgrind`,
 * the instructions the relay executed over the same messages (valgrind counts them repeatably: the
 * figure to compare on a shared machine, where CPU seconds and throughput drift).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { RELAY_STATUS_TOPIC } from '../common/wire-v1.js';
import { prepareBaseline } from './lib/baseline.js';
import { MosquittoProcess } from './lib/mosquitto.js';
import { DETERMINISTIC_V8 } from './lib/valgrind.js';
import { freePort, waitFor } from './lib/net.js';
import { DIST, startAgent, startRelay } from './lib/pipeline.js';
import { relayYaml, waitForHttp } from './lib/processes.js';
import { cpuSeconds } from './lib/proc-stats.js';
import type { Dist } from './types.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    baseline: { type: 'string', default: '6d15cf2' },
    events: { type: 'string', default: '100000' },
    out: { type: 'string' },
    in: { type: 'string' },
    callgrind: { type: 'boolean', default: false },
    warmup: { type: 'string', default: '20' },
    only: { type: 'string' },
    /** Extra node flags for the relay (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`). */
    'node-args': { type: 'string', default: '' },
    /** With --callgrind: copy the dump to `<keep>-<side>.out` (for callgrind_annotate). */
    keep: { type: 'string' },
  },
});

interface Captured {
  topic: string;
  payload: string;
}

const mode = positionals[0];
const base = prepareBaseline(values.baseline!);
const sides: { name: 'now' | 'baseline'; dist: Dist }[] = [
  { name: 'now', dist: DIST },
  { name: 'baseline', dist: base.dist },
];
const chosen = sides.filter((s) => !values.only || s.name === values.only);

if (mode === 'capture') {
  const out = values.out ?? mkdtempSync(join(tmpdir(), 'relay-replay-'));
  mkdirSync(out, { recursive: true });
  for (const s of chosen) await capture(s.dist, Number(values.events), join(out, `${s.name}.jsonl`));
  console.log(`captured into ${out}`);
} else if (mode === 'replay') {
  if (!values.in) throw new Error('--in DIR (from capture)');
  for (const s of chosen) {
    const msgs = readFileSync(join(values.in, `${s.name}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Captured);
    const r = await replay(s.dist, msgs, Number(values.warmup), values.callgrind, values.keep && `${values.keep}-${s.name}.out`);
    const per = 100_000 / r.records;
    console.log(
      `${s.name.padEnd(8)} ${r.records} records in ${r.messages} messages after ${r.warmup} warm-up: relay CPU ${(r.cpu * per).toFixed(3)} s per 100k` +
        (r.instructions !== undefined ? `, ${((r.instructions * per) / 1e9).toFixed(3)} G instructions per 100k` : ''),
    );
  }
} else {
  console.error('usage: relay-replay.ts capture|replay [options] (see the comment at the top)');
  process.exitCode = 2;
}

/** One durable-e2e-like run of a revision's agent and relay, every events message recorded. */
async function capture(dist: Dist, events: number, file: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-capture-'));
  const broker = await MosquittoProcess.start(dir);
  const relay = await startRelay(join(dir, 'run'), broker.url, true, dist);
  const sniffer = await mqtt.connectAsync(broker.url, { clientId: `sniffer-${process.pid}` });
  const lines = createWriteStream(file);
  let records = 0;
  sniffer.on('message', (topic, payload) => {
    if (!/^erp-edge\/v\d\/[^/]+\/[^/]+\/events\//.test(topic)) return;
    lines.write(`${JSON.stringify({ topic, payload: payload.toString('base64') })}\n`);
    records += (JSON.parse(payload.toString('utf8')) as { records: unknown[] }).records.length;
  });
  await sniffer.subscribeAsync('erp-edge/#', { qos: 1 });
  const agent = startAgent(join(dir, 'run'), { brokerUrl: broker.url, total: events, rate: 0, batch: 1_000 }, dist);
  try {
    await waitFor(`${events} records seen`, () => records >= events, 600_000, 100);
  } finally {
    await agent.kill('SIGTERM');
    await relay.proc.kill('SIGTERM');
    await sniffer.endAsync();
    lines.end();
    await once(lines, 'finish');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A revision's relay fed `msgs` one at a time (each after the previous ack). */
async function replay(dist: Dist, msgs: Captured[], warmup: number, callgrind: boolean, keep?: string): Promise<{ records: number; messages: number; warmup: number; cpu: number; instructions?: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'relay-replay-'));
  const broker = await MosquittoProcess.start(dir);
  const httpPort = await freePort();
  const conf = join(dir, 'relay.yaml');
  writeFileSync(conf, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: broker.url, authKey: dist === DIST }));
  const cgOut = join(dir, 'callgrind.out');
  const node = [...(values['node-args'] ?? '').split(' ').filter(Boolean), dist.relay, 'run', '--config', conf];
  const proc: ChildProcess = callgrind
    ? // V8 compiles and collects garbage on other threads, when valgrind lets them run: single-threaded,
      // the same work lands at the same point every run, so the counts repeat.
      spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${cgOut}`, '--dump-instr=no', process.execPath, ...DETERMINISTIC_V8, ...node], { stdio: ['ignore', 'ignore', 'pipe'] })
    : spawn(process.execPath, node, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const client = await mqtt.connectAsync(broker.url, { clientId: `replay-${process.pid}` });
  try {
    await waitForHttp(`http://127.0.0.1:${httpPort}`, callgrind ? 300_000 : 20_000);
    // Online (retained, published once subscribed to events): a message sent before would be lost.
    let online = false;
    let waiting: (() => void) | undefined;
    client.on('message', (topic, payload) => {
      if (topic === RELAY_STATUS_TOPIC) online = (JSON.parse(payload.toString('utf8')) as { online?: boolean }).online === true;
      else waiting?.();
    });
    await client.subscribeAsync(['erp-edge/+/+/+/ack', RELAY_STATUS_TOPIC], { qos: 1 });
    await waitFor('relay online', () => online, callgrind ? 300_000 : 20_000, 50);
    let cpu0 = 0;
    let records = 0;
    for (let i = 0; i < msgs.length; i++) {
      if (i === warmup) {
        if (callgrind) zeroCounters(proc.pid!);
        cpu0 = cpuSeconds(proc.pid!);
      }
      const m = msgs[i]!;
      const payload = Buffer.from(m.payload, 'base64');
      if (i >= warmup) records += (JSON.parse(payload.toString('utf8')) as { records: unknown[] }).records.length;
      const acked = new Promise<void>((r) => (waiting = r));
      await client.publishAsync(m.topic, payload, { qos: 1 });
      await acked;
    }
    const cpu = cpuSeconds(proc.pid!) - cpu0;
    const instructions = callgrind ? dumpInstructions(proc.pid!, cgOut, keep) : undefined;
    return { records, messages: msgs.length - warmup, warmup, cpu, ...(instructions !== undefined ? { instructions } : {}) };
  } catch (err) {
    throw new Error(`${(err as Error).message}\nrelay stderr: ${stderr}`);
  } finally {
    await client.endAsync();
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function callgrindControl(args: string[]): string {
  const r = spawnSync('callgrind_control', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${r.stderr || r.stdout}`);
  return r.stdout;
}

function zeroCounters(pid: number): void {
  callgrindControl(['-z', String(pid)]);
}

/** Dumps the counters since the last zeroing and returns their total (Ir). */
function dumpInstructions(pid: number, outBase: string, keep?: string): number {
  callgrindControl(['-d', String(pid)]);
  // A dump on request lands in `<out>.<n>` beside the file written at exit.
  const dir = dirname(outBase);
  const files = readdirSync(dir).filter((f) => f.startsWith(`${basename(outBase)}.`));
  let total = 0;
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    if (keep) copyFileSync(join(dir, f), keep);
    const m = /^(?:summary|totals): (\d+)/m.exec(text);
    if (m) total += Number(m[1]);
  }
  return total;
}
