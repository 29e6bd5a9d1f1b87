import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';
import { waitFor } from '../../bench/lib/net.js';
import { checkStream, storedCounts, type StreamVerdict } from './check.js';
import { FileProducer } from './producers.js';
import { FAULT_KINDS, makeSchedule, type FaultKind, type Round } from './schedule.js';
import { ChaosSite, FILES_STREAM, SYNTH_STREAM } from './site.js';

export interface ChaosOptions {
  rounds: number;
  seed: number;
  /** Working folder (kept); default: a new temp folder, removed after a clean run. */
  dir?: string;
  /** A round whose backlog is not delivered within this after the fault ends fails the run. */
  recoveryLimitMs?: number;
  print?: (line: string) => void;
  /** Ends the rounds early (Ctrl-C): the quiet period and the check still run, on the rounds done. */
  signal?: AbortSignal;
}

export interface RoundResult extends Round {
  /** From the end of the fault until the relay held everything the agent had captured by then. */
  recoveryMs: number | null;
  /** Processes found dead that the runner had not killed. */
  unexpectedExits: string[];
}

export interface ChaosSummary {
  rounds: number;
  /** Rounds asked for (more than `rounds` when stopped early). */
  planned: number;
  seed: number;
  faults: Record<FaultKind, number>;
  events: number;
  lost: number;
  duplicated: number;
  outOfOrder: number;
  unexpected: number;
  seqProblems: number;
  unrecovered: number;
  unexpectedExits: number;
  longestRecoveryMs: number;
  longestRecoveryByKind: Partial<Record<FaultKind, number>>;
  streams: StreamVerdict[];
  results: RoundResult[];
  durationMs: number;
  dir: string;
}

/** Short, so dead links are dropped quickly; not so short that a busy relay's acks look lost (each timeout resends the window). */
const ACK_TIMEOUT_MS = 5_000;

/**
 * Runs a site of real processes through `rounds` faults from the seeded schedule, lets it settle,
 * then checks the relay's store against what the producers committed.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosSummary> {
  const print = o.print ?? ((l: string) => console.log(l));
  const startedAt = Date.now();
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'erp-edge-chaos-'));
  const schedule = makeSchedule(o.rounds, o.seed);
  const recoveryLimit = o.recoveryLimitMs ?? 120_000;
  // The synthetic generator runs about as long as the rounds do (then the file drop goes on alone).
  const synthRate = 200;
  const synthTotal = Math.max(1_000, o.rounds * 4 * synthRate);
  const site = await ChaosSite.start({ dir, synthTotal, synthRate, ackTimeout: `${ACK_TIMEOUT_MS}ms` });
  // 2 files a second: a loaded 2-core machine keeps up (the file drop's cost is per file).
  const files = new FileProducer(site.inbox, 50, 500);
  const results: RoundResult[] = [];
  let ok = false;
  try {
    files.start();
    await waitFor('the first events at the relay', () => safeStored(site.relayDb, SYNTH_STREAM) > 0, 60_000, 100);
    for (const r of schedule) {
      if (o.signal?.aborted) {
        print(`stopped after ${results.length} of ${o.rounds} rounds; checking what was committed so far`);
        break;
      }
      const unexpectedExits = await reviveUnexpected(site);
      await sleep(r.beforeMs);
      const healedAt = await applyFault(site, r);
      const recoveryMs = await recovery(site, healedAt, recoveryLimit);
      results.push({ ...r, recoveryMs, unexpectedExits });
      print(`round ${String(r.round).padStart(String(o.rounds).length)}/${o.rounds}  ${r.kind.padEnd(15)} hold ${String(r.holdMs).padStart(4)} ms  recovered ${recoveryMs === null ? 'NOT within the limit' : `in ${recoveryMs} ms`}${unexpectedExits.length ? `  (found dead: ${unexpectedExits.join(', ')})` : ''}`);
    }
    files.stop();
    // Quiet period: until every committed event is at the relay, or nothing has moved for a minute.
    await reviveUnexpected(site);
    await settle(site, synthTotal, files.rows, print);
    await site.stop();
    const streams = [
      checkStream(site.relayDb, SYNTH_STREAM, Array.from({ length: synthTotal }, (_, i) => String(i + 1)), (d) => String(d.n)),
      checkStream(site.relayDb, FILES_STREAM, files.committed.flatMap((n, fi) => Array.from({ length: n }, (_, i) => `${fi + 1}:${i + 1}`)), (d) => fileRowKey(d)),
    ];
    const summary = summarise(o, results, streams, Date.now() - startedAt, dir);
    ok = passed(summary);
    return summary;
  } finally {
    files.stop();
    await site.kill();
    if (ok && !o.dir) rmSync(dir, { recursive: true, force: true });
    else print(`working folder kept: ${dir}`);
  }
}

/** A file-drop JSON Lines record: `data.fields` is the line's object. */
function fileRowKey(d: Record<string, unknown>): string {
  const f = (d.fields ?? {}) as { f?: unknown; i?: unknown };
  return `${String(f.f)}:${String(f.i)}`;
}

/** Waits while the relay keeps taking events, until it holds all committed; gives up after a minute without progress. */
async function settle(site: ChaosSite, synthTotal: number, fileRows: number, print: (l: string) => void): Promise<void> {
  let last = -1;
  let lastMoveAt = Date.now();
  for (;;) {
    const synth = safeStored(site.relayDb, SYNTH_STREAM);
    const rows = safeStored(site.relayDb, FILES_STREAM);
    if (synth >= synthTotal && rows >= fileRows) return;
    const now = Date.now();
    if (synth + rows !== last) {
      last = synth + rows;
      lastMoveAt = now;
    } else if (now - lastMoveAt > 60_000) {
      print(`quiet period: no progress for 60 s with ${synth}/${synthTotal} synthetic and ${rows}/${fileRows} file rows at the relay`);
      return;
    }
    await sleep(250);
  }
}

function safeStored(db: string, stream: string): number {
  try {
    return storedCounts(db).get(stream) ?? 0;
  } catch {
    return 0; // not created yet
  }
}

/** A process that died without the runner killing it is a finding: noted, then started again. */
async function reviveUnexpected(site: ChaosSite): Promise<string[]> {
  const dead: string[] = [];
  if (!site.agent.running) {
    dead.push('agent');
    site.agent.start();
  }
  if (!site.relay.running) {
    dead.push('relay');
    await site.startRelay();
  }
  return dead;
}

/** Applies the fault, holds it, ends it; returns when it ended. */
async function applyFault(site: ChaosSite, r: Round): Promise<number> {
  const hold = () => sleep(r.holdMs);
  switch (r.kind) {
    case 'kill9-agent':
    case 'sigterm-agent':
      await site.agent.kill(r.kind === 'kill9-agent' ? 'SIGKILL' : 'SIGTERM');
      await hold();
      site.agent.start();
      break;
    case 'kill9-relay':
    case 'sigterm-relay':
      await site.relay.kill(r.kind === 'kill9-relay' ? 'SIGKILL' : 'SIGTERM');
      await hold();
      await site.startRelay();
      break;
    case 'kill9-broker':
    case 'sigterm-broker':
      await site.broker.stop(r.kind === 'kill9-broker' ? 'SIGKILL' : 'SIGTERM');
      await hold();
      await site.broker.restart();
      break;
    case 'net-blackhole':
      site.proxy.blackhole({ newConnections: true });
      await hold();
      site.proxy.restore();
      break;
    case 'net-reset':
      site.proxy.reset();
      break;
    case 'net-delay-2s':
      site.proxy.delay(2_000);
      await hold();
      site.proxy.delay(0);
      break;
    case 'relay-pause': {
      const pid = site.relay.pid;
      if (pid === undefined) throw new Error('relay not running');
      process.kill(pid, 'SIGSTOP');
      await hold();
      process.kill(pid, 'SIGCONT');
      break;
    }
  }
  return Date.now();
}

/**
 * Time from the end of the fault until the pipeline flows end to end again: the relay holds, per
 * stream, everything the agent's outbox held at that moment (read from the outbox file, as
 * `edge-agent status` does), and something of the file drop captured after it (its producer runs
 * through every round).
 */
async function recovery(site: ChaosSite, healedAt: number, limitMs: number): Promise<number | null> {
  let targets: Map<string, number>;
  try {
    targets = new Map(readOutboxStatus(join(site.o.dir, 'agent-data', 'outbox.db')).streams.map((s) => [s.stream, s.lastSeq]));
  } catch {
    targets = new Map();
  }
  try {
    await waitFor(
      'recovery',
      () => {
        const stored = storedCounts(site.relayDb);
        for (const [stream, n] of targets) if ((stored.get(stream) ?? 0) < n) return false;
        return (stored.get(FILES_STREAM) ?? 0) > (targets.get(FILES_STREAM) ?? 0);
      },
      limitMs,
      50,
    );
    return Date.now() - healedAt;
  } catch {
    return null;
  }
}

function summarise(o: ChaosOptions, results: RoundResult[], streams: StreamVerdict[], durationMs: number, dir: string): ChaosSummary {
  const faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const longestRecoveryByKind: Partial<Record<FaultKind, number>> = {};
  for (const r of results) {
    faults[r.kind]++;
    if (r.recoveryMs !== null) longestRecoveryByKind[r.kind] = Math.max(longestRecoveryByKind[r.kind] ?? 0, r.recoveryMs);
  }
  const sum = (f: (s: StreamVerdict) => number) => streams.reduce((a, s) => a + f(s), 0);
  return {
    rounds: results.length,
    planned: o.rounds,
    seed: o.seed,
    faults,
    events: sum((s) => s.expected),
    lost: sum((s) => s.lost),
    duplicated: sum((s) => s.duplicated),
    outOfOrder: sum((s) => s.outOfOrder),
    unexpected: sum((s) => s.unexpected),
    seqProblems: sum((s) => s.seqProblems),
    unrecovered: results.filter((r) => r.recoveryMs === null).length,
    unexpectedExits: results.reduce((a, r) => a + r.unexpectedExits.length, 0),
    longestRecoveryMs: Math.max(0, ...results.map((r) => r.recoveryMs ?? 0)),
    longestRecoveryByKind,
    streams,
    results,
    durationMs,
    dir,
  };
}

/** Whether the run kept the promise: nothing lost, doubled or out of order, every fault recovered from. */
export function passed(s: ChaosSummary): boolean {
  return s.lost === 0 && s.duplicated === 0 && s.outOfOrder === 0 && s.unexpected === 0 && s.seqProblems === 0 && s.unrecovered === 0 && s.unexpectedExits === 0;
}

export function formatSummary(s: ChaosSummary): string {
  const rows: [string, string][] = [
    ['rounds', `${s.rounds}${s.planned !== s.rounds ? ` of ${s.planned} (stopped early)` : ''} (seed ${s.seed}, ${Math.round(s.durationMs / 1000)} s)`],
    ...FAULT_KINDS.map((k): [string, string] => [`  ${k}`, `${s.faults[k]}${s.longestRecoveryByKind[k] !== undefined ? `  (longest recovery ${s.longestRecoveryByKind[k]} ms)` : ''}`]),
    ['events', String(s.events)],
    ...s.streams.map((v): [string, string] => [`  ${v.stream}`, `${v.expected} committed, ${v.stored} stored`]),
    ['lost', String(s.lost)],
    ['duplicated', String(s.duplicated)],
    ['out of order', String(s.outOfOrder)],
    ['not produced', String(s.unexpected)],
    ['seq holes/overlaps', String(s.seqProblems)],
    ['longest recovery', `${s.longestRecoveryMs} ms`],
    ['unrecovered rounds', String(s.unrecovered)],
    ['unexpected exits', String(s.unexpectedExits)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return ['| what | count |', '|---|---|', ...rows.map(([k, v]) => `| ${k.padEnd(w)} | ${v} |`)].join('\n');
}
