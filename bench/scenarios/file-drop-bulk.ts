import { existsSync, linkSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { csvParseRate } from '../lib/csv-parse-rate.js';
import { MosquittoProcess } from '../lib/mosquitto.js';
import { writeOrderLinesCsv } from '../lib/order-lines-csv.js';
import { agentDataDir, DIST, relayStreamSpan, startAgent, startRelay, waitCollectorRunning, type BenchRelay } from '../lib/pipeline.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import { relayLastSeq, type CliProcess } from '../lib/processes.js';
import type { Dist, Scenario, ScenarioContext } from '../types.js';

const COLLECTOR = 'order-lines';
const FILE = 'order-lines.csv';
const STABLE_TIME = '500ms';
const MB = 2 ** 20;

/**
 * Issue #7 item 5: an ERP order-lines export (2 M rows, ~100 bytes each) renamed into a file-drop
 * folder, timed until the relay has committed every row; csv-parse alone on the same file in the
 * same run is the reference the end-to-end rate is held against. With `--baseline REF` that
 * revision's agent and relay are measured too, alternately (before/after a collector rewrite).
 */
export const fileDropBulk: Scenario = {
  name: 'file-drop-bulk',
  description: 'a 2 M-row CSV (~200 MB) renamed into a file-drop folder → relay store complete, against csv-parse alone on the same file; agent peak RSS',
  async run(ctx: ScenarioContext) {
    const rows = Math.max(1_000, Math.round((ctx.quick ? 100_000 : 2_000_000) * ctx.scale));
    const source = join(ctx.dir, FILE);
    const bytes = writeOrderLinesCsv(source, rows);
    ctx.param('rows', rows);
    ctx.param('file_bytes', bytes);
    ctx.param('collector', `file-drop, csv, no key columns, stable_time ${STABLE_TIME}`);
    ctx.log(`${rows} rows, ${(bytes / MB).toFixed(1)} MB`);
    const base = ctx.baseline;
    if (base) ctx.param('baseline', `${base.ref} (${base.sha.slice(0, 12)})`);
    for (let r = 0; r < ctx.repeats; r++) {
      const parser = await csvParseRate(source);
      if (parser.rows !== rows) throw new Error(`csv-parse read ${parser.rows} rows, expected ${rows}`);
      const parserRate = rows / parser.seconds;
      ctx.record('csv-parse alone, same file', 'rows/s', parserRate, 'reference');
      // With a baseline (the collector before a rewrite), the two alternate, as in durable-e2e.
      const order = !base ? ['now'] : r % 2 === 0 ? ['now', 'baseline'] : ['baseline', 'now'];
      for (const which of order) {
        const m = await measure(ctx, join(ctx.dir, `run-${r}-${which}`), source, rows, which === 'now' ? DIST : base!.dist);
        recordRun(ctx, rows, parserRate, m, which === 'now' ? undefined : base!.ref);
      }
    }
    ctx.note('"in the outbox" times are the capture stamps (ts) of the first and last record as the relay stored them: the writer stamps a batch just before committing it to the outbox');
    ctx.note('"rename → first row in the outbox" is stable_time plus whatever the collector does before its first append (since #7: one pass that hashes, detects the encoding and validates the whole file; the ingest pass parses it again. Release 0.2 hashed, validated and ingested in three passes)');
  },
};

/** One run's figures; a baseline's carry its ref in their names and no target. */
function recordRun(ctx: ScenarioContext, rows: number, parserRate: number, m: Measured, baselineRef?: string): void {
  const label = baselineRef ? `, baseline ${baselineRef}` : '';
  const record = (name: string, unit: string, value: number, target?: string) => ctx.record(`${name}${label}`, unit, value, baselineRef ? undefined : target);
  const rate = rows / m.endToEnd;
  record('end to end: rename → relay has every row', 'rows/s', rate, '>= 0.5x csv-parse');
  record('ratio to csv-parse alone', 'x', rate / parserRate, '>= 0.5');
  record('agent RSS (max)', 'MB', m.rssMb, '< 120');
  record('rename → first row in the outbox', 's', m.firstCaptured);
  record('rename → every row in the outbox', 's', m.allCaptured);
  record('rename → relay has every row', 's', m.endToEnd);
  // One stamp per batch: with a file of a few batches the pass has no measurable length.
  if (m.allCaptured > m.firstCaptured) record('collector ingest pass (first → last row into the outbox)', 'rows/s', rows / (m.allCaptured - m.firstCaptured));
  record('agent CPU over the run (100 = one core)', '%', m.agentCpu);
  record('relay CPU over the run (100 = one core)', '%', m.relayCpu);
}

interface Measured {
  /** Seconds from the rename. */
  firstCaptured: number;
  allCaptured: number;
  endToEnd: number;
  rssMb: number;
  agentCpu: number;
  relayCpu: number;
}

/** One run: a fresh broker, relay and agent (of `dist`); the file hard-linked beside the drop folder, then renamed into it. */
async function measure(ctx: ScenarioContext, dir: string, source: string, rows: number, dist: Dist): Promise<Measured> {
  const drop = join(dir, 'drop');
  const broker = await MosquittoProcess.start(ctx.dir);
  const relay = await startRelay(dir, broker.url, true, dist);
  const agent = startAgent(dir, { brokerUrl: broker.url, total: 0, rate: 0, batch: 1, collectorsYaml: collectorYaml(drop) }, dist);
  const rss = sampleRss(agent.pid!);
  try {
    await waitCollectorRunning(dir, COLLECTOR, 60_000);
    const staged = join(dir, FILE);
    linkSync(source, staged);
    const cpu0 = { agent: cpuSeconds(agent.pid!), relay: cpuSeconds(relay.proc.pid!) };
    const t0 = Date.now();
    renameSync(staged, join(drop, FILE));
    await waitAllStored(ctx, { dir, drop, agent, relay, rows, timeoutMs: 120_000 + rows });
    const wall = (Date.now() - t0) / 1000;
    const agentCpu = ((cpuSeconds(agent.pid!) - cpu0.agent) / wall) * 100;
    const relayCpu = ((cpuSeconds(relay.proc.pid!) - cpu0.relay) / wall) * 100;
    const span = relayStreamSpan(relay.dbPath, COLLECTOR);
    if (span.count !== rows) throw new Error(`relay holds ${span.count} rows, expected ${rows}`);
    const since = (t: number) => (t - t0) / 1000;
    return { firstCaptured: since(span.firstTs), allCaptured: since(span.lastTs), endToEnd: since(span.lastReceived), rssMb: rss.stop().max / MB, agentCpu, relayCpu };
  } finally {
    rss.stop();
    await agent.kill('SIGTERM');
    await relay.proc.kill('SIGTERM');
    await broker.stop();
  }
}

/** One file-drop collector on `drop`: CSV, no key columns (row ids from the file's hash and row number). */
function collectorYaml(drop: string): string {
  return `  - type: file-drop\n    name: ${COLLECTOR}\n    path: ${drop}\n    stable_time: ${STABLE_TIME}\n`;
}

interface Run {
  dir: string;
  drop: string;
  agent: CliProcess;
  relay: BenchRelay;
  rows: number;
  timeoutMs: number;
}

/**
 * Polls the relay until it holds every row; fails at once if the agent exits, the file lands in
 * error/ or the collector reports an error (asked every 10 s, as `edge-agent status` does).
 */
async function waitAllStored(ctx: ScenarioContext, run: Run): Promise<void> {
  const deadline = Date.now() + run.timeoutMs;
  let nextCheck = Date.now() + 10_000;
  for (;;) {
    const stored = await relayLastSeq(run.relay.httpUrl, COLLECTOR).catch(() => 0);
    if (stored >= run.rows) return;
    if (!run.agent.running) throw new Error(`the agent exited; its log: ${tail(join(run.dir, 'agent.log'))}`);
    if (existsSync(join(run.drop, 'error'))) throw new Error(`the collector moved the file to error/: ${errorReason(join(run.drop, 'error'))}`);
    if (Date.now() > nextCheck) {
      nextCheck = Date.now() + 10_000;
      await failOnCollectorError(run.dir);
      ctx.log(`relay holds ${stored} of ${run.rows} rows`);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${run.timeoutMs} ms: the relay holds ${stored} of ${run.rows} rows`);
    await sleep(200);
  }
}

async function failOnCollectorError(dir: string): Promise<void> {
  const s = await controlRequest<AgentSnapshot>(controlSocketPath(agentDataDir(dir)), 'GET', '/status').catch(() => undefined);
  const c = s?.collectors.find((x) => x.name === COLLECTOR);
  if (c?.lastError) throw new Error(`collector ${COLLECTOR} ${c.state}: ${c.lastError.code ?? ''} ${c.lastError.message}`);
}

function errorReason(errorDir: string): string {
  const reason = readdirSync(errorDir).find((f) => f.endsWith('.reason.txt'));
  return reason ? readFileSync(join(errorDir, reason), 'utf8').trim() : '(no reason file yet)';
}

function tail(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8').slice(-2_000).trim() : '(no log)';
}
