import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ScenarioUnavailable } from '../types.js';
import type { Dist } from '../types.js';
import Database from 'better-sqlite3';
import { CliProcess, relayYaml, waitForHttp, relayLastSeq } from './processes.js';
import { freePort, waitFor } from './net.js';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { AGENT_NODE_FLAGS } from '../../agent/runtime-flags.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Compiled entry points (`npm run build`): the agent is measured as it runs as a service, without tsx. */
export const DIST: Dist = {
  agent: join(ROOT, 'dist', 'agent', 'cli.js'),
  relay: join(ROOT, 'dist', 'cloud-relay', 'cli.js'),
};

/** The single executables of `npm run package` (Node 24 and the agent's runtime flags inside). */
export const PACKAGED: Dist = {
  agent: join(ROOT, 'dist', 'package', 'linux-x64', 'edge-agent'),
  relay: join(ROOT, 'dist', 'package', 'linux-x64', 'cloud-relay'),
  executable: true,
};

export function packagedBuilt(): boolean {
  return Object.values(PACKAGED).every((p) => typeof p !== 'string' || existsSync(p));
}

export function assertBuilt(): void {
  for (const p of Object.values(DIST)) {
    if (!existsSync(p)) throw new ScenarioUnavailable(`${p} is missing: run \`npm run build\` first (npm run bench does)`);
  }
}

export const SITE = 'bench-site';
export const AGENT = 'bench-agent';
export const STREAM = 'load';

export interface BenchRelay {
  proc: CliProcess;
  httpUrl: string;
  dbPath: string;
}

/** The relay as its own process (its own core on a 2-core machine, as in a real deployment). */
export async function startRelay(dir: string, brokerUrl: string, waitHttp = true, dist: Dist = DIST): Promise<BenchRelay> {
  mkdirSync(dir, { recursive: true });
  const httpPort = await freePort();
  const dbPath = join(dir, 'relay.db');
  const conf = join(dir, 'relay.yaml');
  // A baseline from 0.4 on has the `auth:` key (and refuses to start without it); one before it refuses the key.
  const hasAuth = dist === DIST || existsSync(join(dirname(dist.relay), 'auth'));
  writeFileSync(conf, relayYaml({ dbPath, httpPort, brokerUrl, authKey: hasAuth }));
  if (dist === DIST) assertBuilt();
  const proc = new CliProcess('cloud-relay', conf, join(dir, 'relay.log'), dist.relay);
  proc.start();
  const httpUrl = `http://127.0.0.1:${httpPort}`;
  if (waitHttp) await waitForHttp(httpUrl);
  return { proc, httpUrl, dbPath };
}

export interface AgentOptions {
  brokerUrl: string;
  /** Synthetic events in all; 0 = none (idle agent). */
  total: number;
  rate: number;
  batch: number;
  transport?: { batch_max_records?: number; max_inflight?: number };
  synchronous?: 'FULL' | 'NORMAL';
  /** The `collectors:` list items (YAML) instead of the synthetic or idle one. */
  collectorsYaml?: string;
  /**
   * The agent's /healthz and /metrics on a free port (0.4 on; a baseline release before it has no
   * `http:` key): never the default 9465, which an agent of `npm start` may hold.
   */
  httpEndpoints?: boolean;
}

export function agentConfig(dir: string, o: AgentOptions): string {
  mkdirSync(dir, { recursive: true });
  const collector =
    o.collectorsYaml ??
    (o.total > 0
      ? `  - type: synthetic\n    name: ${STREAM}\n    rate: ${o.rate}\n    total: ${o.total}\n    batch: ${o.batch}\n`
      : `  - type: file-drop\n    name: idle\n    path: ${join(dir, 'inbox')}\n`);
  const t = o.transport ?? {};
  const yaml = `site: ${SITE}
agent: ${AGENT}
log_level: warn
data_dir: ${agentDataDir(dir)}
outbox:
  synchronous: ${o.synchronous ?? 'FULL'}
  max_bytes: 20GB
  max_events: 50000000
${o.httpEndpoints ? 'http:\n  listen: 127.0.0.1:0\n' : ''}transport:
  url: ${o.brokerUrl}
  ack_timeout: 30s
${t.batch_max_records ? `  batch_max_records: ${t.batch_max_records}\n` : ''}${t.max_inflight ? `  max_inflight: ${t.max_inflight}\n` : ''}collectors:
${collector}`;
  const path = join(dir, 'agent.yaml');
  writeFileSync(path, yaml);
  return path;
}

export function startAgent(dir: string, o: AgentOptions, dist: Dist = DIST): CliProcess {
  if (dist === DIST) assertBuilt();
  const proc = new CliProcess('edge-agent', agentConfig(dir, { httpEndpoints: dist === DIST || dist === PACKAGED, ...o }), join(dir, 'agent.log'), dist.agent, dist.agentFlags ?? AGENT_NODE_FLAGS, dist.executable);
  proc.start();
  return proc;
}

export function agentDataDir(dir: string): string {
  return join(dir, 'agent-data');
}

export function outboxPath(dir: string): string {
  return join(agentDataDir(dir), 'outbox.db');
}

/** Waits until the agent's outbox holds `n` events of the stream (captured, whether sent or not). */
export async function waitCaptured(dir: string, n: number, timeoutMs: number): Promise<void> {
  await waitFor(
    `${n} events captured`,
    () => {
      try {
        return (readOutboxStatus(outboxPath(dir)).streams.find((s) => s.stream === STREAM)?.lastSeq ?? 0) >= n;
      } catch {
        return false; // not created yet
      }
    },
    timeoutMs,
    200,
  );
}

/** Waits until the running agent (its control socket, as `edge-agent status`) reports the collector `name` running. */
export async function waitCollectorRunning(dir: string, name: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `collector ${name} running`,
    async () => {
      const s = await controlRequest<AgentSnapshot>(controlSocketPath(agentDataDir(dir)), 'GET', '/status');
      return s?.collectors.find((c) => c.name === name)?.state === 'running';
    },
    timeoutMs,
    100,
  );
}

export async function waitStored(relay: BenchRelay, n: number, timeoutMs: number): Promise<void> {
  await waitFor(`relay to store ${n} events`, async () => (await relayLastSeq(relay.httpUrl, STREAM).catch(() => 0)) >= n, timeoutMs, 50);
}

/** From the relay's store: capture time of the first record, commit time of the last, per-record latency. */
export function relayTimes(dbPath: string): { count: number; firstTs: number; lastReceived: number; firstReceived: number; latencies: number[] } {
  const db = new Database(dbPath, { readonly: true });
  try {
    // The relay stores segments of records (a JSON array each, with the segment's commit time).
    const agg = db
      .prepare(
        `SELECT coalesce(sum(g.last_seq - g.first_seq + 1), 0) AS n, max(g.received_at) AS lastReceived, min(g.received_at) AS firstReceived,
                (SELECT min(json_extract(j.value, '$.ts')) FROM segments g2, json_each(g2.records) j WHERE g2.stream_id = st.id) AS firstTs
         FROM segments g JOIN streams st ON st.id = g.stream_id WHERE st.stream = ?`,
      )
      .get(STREAM) as { n: number; firstTs: number; lastReceived: number; firstReceived: number };
    const latencies = db
      .prepare(
        `SELECT g.received_at - json_extract(j.value, '$.ts') AS l
         FROM segments g JOIN streams st ON st.id = g.stream_id, json_each(g.records) j WHERE st.stream = ?`,
      )
      .pluck()
      .all(STREAM) as number[];
    return { count: agg.n, firstTs: agg.firstTs, lastReceived: agg.lastReceived, firstReceived: agg.firstReceived, latencies };
  } finally {
    db.close();
  }
}

/**
 * From the relay's store, cheaply (first and last segment only): records held for `stream`, the
 * capture stamp (`ts`, set by the agent's writer just before its outbox commit) of the first and
 * the last record, and the commit time of the last segment.
 */
export function relayStreamSpan(dbPath: string, stream: string): { count: number; firstTs: number; lastTs: number; lastReceived: number } {
  const db = new Database(dbPath, { readonly: true });
  try {
    const where = 'FROM segments g JOIN streams st ON st.id = g.stream_id WHERE st.stream = ?';
    const agg = db.prepare(`SELECT coalesce(sum(g.last_seq - g.first_seq + 1), 0) AS n, max(g.received_at) AS lastReceived ${where}`).get(stream) as { n: number; lastReceived: number };
    const firstTs = db.prepare(`SELECT json_extract(g.records, '$[0].ts') ${where} ORDER BY g.first_seq LIMIT 1`).pluck().get(stream) as number;
    const lastTs = db.prepare(`SELECT json_extract(g.records, '$[#-1].ts') ${where} ORDER BY g.last_seq DESC LIMIT 1`).pluck().get(stream) as number;
    return { count: agg.n, firstTs, lastTs, lastReceived: agg.lastReceived };
  } finally {
    db.close();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
