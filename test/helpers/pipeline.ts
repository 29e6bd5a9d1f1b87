import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { waitFor } from './net.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface AgentYamlOptions {
  site?: string;
  agent?: string;
  url: string;
  inbox: string;
  dataDir: string;
  extraOutbox?: string;
  extraTransport?: string;
  batchSize?: number;
}

/** A small agent config, written by the test, with one CSV file-drop collector on stream `orders`. */
export function agentYaml(o: AgentYamlOptions): string {
  return `site: ${o.site ?? 'site-a'}
agent: ${o.agent ?? 'agent-1'}
log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}
data_dir: ${o.dataDir}
outbox:
  synchronous: FULL
${o.extraOutbox ?? ''}
transport:
  url: ${o.url}
  ack_timeout: 3s
${o.extraTransport ?? ''}
collectors:
  - type: file-drop
    name: orders
    path: ${o.inbox}
    include: ["*.csv"]
    stable_time: 200ms
    batch_size: ${o.batchSize ?? 1000}
`;
}

export function relayYaml(o: { dbPath: string; httpPort: number; brokerUrl?: string; embeddedPort?: number; extra?: string }): string {
  const broker = o.brokerUrl ? `broker:\n  url: ${o.brokerUrl}` : `broker: embedded\nembedded_broker:\n  port: ${o.embeddedPort ?? 0}`;
  return `id: relay-test
log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}
${broker}
store:
  path: ${o.dbPath}
  synchronous: ${process.env.ERP_EDGE_RELAY_SYNC ?? "FULL"}
http:
  port: ${o.httpPort}
${o.extra ?? ''}`;
}

/**
 * Writes CSV files of `rowsPerFile` rows into `inbox`, each first under a temp name then renamed
 * (as ERP exports do). Row fields carry the file number and a global counter `n` from `startN`.
 */
export function dropCsvFiles(inbox: string, files: number, rowsPerFile: number, startN = 1, prefix = 'orders'): number {
  mkdirSync(inbox, { recursive: true });
  let n = startN;
  for (let f = 0; f < files; f++) {
    const lines = ['n,file,sku,qty,note'];
    for (let r = 0; r < rowsPerFile; r++, n++) lines.push(`${n},${f},SKU-${n % 997},${n % 50},"row ${n}, ok"`);
    const name = `${prefix}-${startN}-${f}.csv`;
    writeFileSync(join(inbox, `${name}.tmp`), `${lines.join('\n')}\n`);
    renameSync(join(inbox, `${name}.tmp`), join(inbox, name));
  }
  return n - startN;
}

export interface RelayEvent {
  seq: number;
  id: string;
  data: { file: string; line: number; fields: Record<string, string> };
}

/** Every event of a stream from the relay's HTTP API, following `next_after`. */
export async function fetchAllEvents(httpUrl: string, site: string, agent: string, stream: string): Promise<RelayEvent[]> {
  const out: RelayEvent[] = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${httpUrl}/api/events?site=${site}&agent=${agent}&stream=${stream}&after=${after}&limit=5000`);
    if (!res.ok) throw new Error(`GET /api/events: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { events: RelayEvent[]; next_after: number };
    out.push(...body.events);
    if (body.events.length === 0) return out;
    after = body.next_after;
  }
}

/** The relay's count of stored events for a stream (from /api/streams, current epoch). */
export async function relayLastSeq(httpUrl: string, stream = 'orders'): Promise<number> {
  const res = await fetch(`${httpUrl}/api/streams`);
  const body = (await res.json()) as { streams: { stream: string; last_seq: number; current: boolean }[] };
  return body.streams.find((s) => s.stream === stream && s.current)?.last_seq ?? 0;
}

/**
 * Asserts the relay holds exactly rows n = 1..total of the drop: seqs 1..total with no gap, each
 * row once, and each file's rows in file order (files themselves may be taken in any order).
 * Returns a description of the first fault.
 */
export function checkExact(events: RelayEvent[], total: number): string | undefined {
  if (events.length !== total) return `expected ${total} events, relay has ${events.length}`;
  const seenIds = new Set<string>();
  const seenN = new Set<number>();
  const lastLineOfFile = new Map<string, number>();
  for (let i = 0; i < events.length; i++) {
    const e = events[i]!;
    if (e.seq !== i + 1) return `seq ${e.seq} at position ${i + 1}`;
    if (seenIds.has(e.id)) return `duplicate id ${e.id}`;
    seenIds.add(e.id);
    const n = Number(e.data.fields.n);
    if (!(n >= 1 && n <= total) || seenN.has(n)) return `row n=${e.data.fields.n} at seq ${e.seq}: unexpected or duplicated`;
    seenN.add(n);
    const prev = lastLineOfFile.get(e.data.file) ?? 0;
    if (e.data.line <= prev) return `${e.data.file} line ${e.data.line} after line ${prev}: out of order`;
    lastLineOfFile.set(e.data.file, e.data.line);
  }
  return undefined;
}

/** Runs `edge-agent` or `cloud-relay` as a child process (for kill -9 tests); output goes to a log file. */
export class CliProcess {
  private proc: ChildProcess | undefined;
  /** `entry`: a compiled JS entry point instead of bin/<bin>.js (the benchmark runs dist/, as a service would). */
  constructor(
    private readonly bin: 'edge-agent' | 'cloud-relay',
    private readonly configPath: string,
    private readonly logPath: string,
    private readonly entry?: string,
    private readonly nodeArgs: readonly string[] = [],
  ) {}

  start(env: NodeJS.ProcessEnv = {}): void {
    const log = createWriteStream(this.logPath, { flags: 'a' });
    // ERP_EDGE_CHILD_NODE_ARGS: extra node flags for the child (e.g. --cpu-prof while profiling).
    const extra = (process.env.ERP_EDGE_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const proc = spawn(process.execPath, [...this.nodeArgs, ...extra, this.entry ?? join(ROOT, 'bin', `${this.bin}.js`), 'run', '--config', this.configPath], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    this.proc = proc;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  }
}

/** Waits until the relay's HTTP API answers (child relays take a moment to start). */
export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`HTTP ${url}`, async () => (await fetch(`${url}/healthz`)).ok, timeoutMs, 100);
}
