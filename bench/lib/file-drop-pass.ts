import { existsSync, linkSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import type { Dist, ScenarioContext } from '../types.js';
import { MosquittoProcess } from './mosquitto.js';
import { agentDataDir, relayStreamSpan, startAgent, startRelay, waitCollectorRunning, type BenchRelay } from './pipeline.js';
import { cpuSeconds, sampleRss } from './proc-stats.js';
import { relayLastSeq, type CliProcess } from './processes.js';

/**
 * One file-drop run end to end (file-drop-bulk's measurement; scanner-tcp runs a small one to
 * report its scan rate beside the file-drop rate of the same run): a fresh broker, relay and
 * agent, a CSV renamed into the drop folder, timed until the relay holds every row.
 */

export const COLLECTOR = 'order-lines';
export const STABLE_TIME = '500ms';
const MB = 2 ** 20;

export interface FileDropMeasured {
  /** Seconds from the rename. */
  firstCaptured: number;
  allCaptured: number;
  endToEnd: number;
  rssMb: number;
  agentCpu: number;
  relayCpu: number;
}

/** One run: a fresh broker, relay and agent (of `dist`); the file hard-linked beside the drop folder, then renamed into it. */
export async function measureFileDrop(ctx: ScenarioContext, dir: string, source: string, rows: number, dist: Dist): Promise<FileDropMeasured> {
  const drop = join(dir, 'drop');
  const broker = await MosquittoProcess.start(ctx.dir);
  const relay = await startRelay(dir, broker.url, true, dist);
  const agent = startAgent(dir, { brokerUrl: broker.url, total: 0, rate: 0, batch: 1, collectorsYaml: collectorYaml(drop) }, dist);
  const rss = sampleRss(agent.pid!);
  try {
    await waitCollectorRunning(dir, COLLECTOR, 60_000);
    const staged = join(dir, basename(source));
    linkSync(source, staged);
    const cpu0 = { agent: cpuSeconds(agent.pid!), relay: cpuSeconds(relay.proc.pid!) };
    const t0 = Date.now();
    renameSync(staged, join(drop, basename(source)));
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
