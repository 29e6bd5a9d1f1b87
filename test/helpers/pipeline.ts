import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// The process launchers and relay helpers the bench shares live under bench/lib.
export { CliProcess, relayLastSeq, relayYaml, waitForHttp } from '../../bench/lib/processes.js';

export interface AgentYamlOptions {
  site?: string;
  agent?: string;
  url: string;
  inbox: string;
  dataDir: string;
  extraOutbox?: string;
  extraTransport?: string;
  batchSize?: number;
  /** The whole `collectors:` list (YAML, indented under `collectors:`) instead of the CSV file drop; `inbox` is then unused. */
  collectors?: string;
}

/** A small agent config, written by the test, with one CSV file-drop collector on stream `orders` (or `collectors`). */
export function agentYaml(o: AgentYamlOptions): string {
  return `site: ${o.site ?? 'site-a'}
agent: ${o.agent ?? 'agent-1'}
log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}
data_dir: ${o.dataDir}
outbox:
  synchronous: FULL
${o.extraOutbox ?? ''}
http:
  listen: 127.0.0.1:0
transport:
  url: ${o.url}
  ack_timeout: 3s
${o.extraTransport ?? ''}
collectors:
${o.collectors ?? `  - type: file-drop
    name: orders
    path: ${o.inbox}
    include: ["*.csv"]
    stable_time: 200ms
    batch_size: ${o.batchSize ?? 1000}
`}`;
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

/** Every event of a stream from the relay's HTTP API, following `next_after` (`T`: the events' shape, file-drop rows by default). */
export async function fetchAllEvents<T extends { seq: number } = RelayEvent>(httpUrl: string, site: string, agent: string, stream: string): Promise<T[]> {
  const out: T[] = [];
  let after = 0;
  for (;;) {
    const res = await fetch(`${httpUrl}/api/events?site=${site}&agent=${agent}&stream=${stream}&after=${after}&limit=5000`);
    if (!res.ok) throw new Error(`GET /api/events: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { events: T[]; next_after: number };
    out.push(...body.events);
    if (body.events.length === 0) return out;
    after = body.next_after;
  }
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

