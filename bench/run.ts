/**
 * `npm run bench [-- --quick] [--scenario NAME[,NAME]] [--repeats N] [--out FILE] [--baseline GIT-REF [--baseline-flags own|current]]`
 *
 * Runs each scenario in fresh temp folders against Mosquitto processes it spawns on free
 * loopback ports, prints a table and writes bench/results/latest.json (validated by zod).
 * A scenario that cannot run says why and makes the exit code non-zero; no figure is invented.
 * `--baseline REF` builds that revision beside this tree and the scenarios that support it
 * (durable-e2e) measure both in the same run, alternating. Its agent runs with the Node flags its
 * release shipped (`own`, default) or with this tree's (`current`).
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem, platform, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { benchResults, type BenchResults, type Figure, type Scenario, type ScenarioContext } from './types.js';
import { brokerBaseline } from './scenarios/broker-baseline.js';
import { durableE2e, median } from './scenarios/durable-e2e.js';
import { backlogReplay } from './scenarios/backlog-replay.js';
import { latency } from './scenarios/latency.js';
import { footprint } from './scenarios/footprint.js';
import { mosquittoBridge } from './scenarios/mosquitto-bridge.js';
import { fileDropBulk } from './scenarios/file-drop-bulk.js';
import { sqlSnapshot } from './scenarios/sql-snapshot.js';
import { sqlLogical } from './scenarios/sql-logical.js';
import { fleetHealth } from './scenarios/fleet-health.js';
import { scannerTcp } from './scenarios/scanner-tcp.js';
import { relayStore } from './scenarios/relay-store.js';
import { sinkDelivery } from './scenarios/sink-delivery.js';
import { outboxBinding } from './scenarios/outbox-binding.js';
import { findBinary } from './lib/requirements.js';
import { prepareBaseline, type BaselineFlags } from './lib/baseline.js';
import { AGENT_NODE_FLAGS } from '../agent/runtime-flags.js';

const ROOT = resolve(import.meta.dirname, '..');
export const SCENARIOS: Scenario[] = [brokerBaseline, durableE2e, backlogReplay, latency, footprint, mosquittoBridge, fileDropBulk, sqlSnapshot, sqlLogical, fleetHealth, scannerTcp, relayStore, sinkDelivery, outboxBinding];

function machineInfo(): BenchResults['machine'] {
  const mosq = findBinary('mosquitto');
  const mosqVersion = mosq ? (spawnSync(mosq, ['-h'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? 'unknown').trim() : 'not installed';
  const db = new Database(':memory:');
  const sqlite = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  db.close();
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model ?? 'unknown',
    memory_bytes: totalmem(),
    platform: `${platform()} ${release()}`,
    node: process.version,
    mosquitto: mosqVersion,
    sqlite,
  };
}

function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  out['erp-edge'] = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  for (const pkg of ['mqtt', 'better-sqlite3', 'aedes', 'zod']) {
    out[pkg] = (JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')) as { version: string }).version;
  }
  return out;
}

export interface RunOptions {
  quick: boolean;
  scenarios: string[];
  repeats: number;
  scale: number;
  out: string;
  print?: (line: string) => void;
  /** The scenarios to choose from (tests pass their own). */
  available?: Scenario[];
  /** A git revision to measure beside this tree (scenarios that support it). */
  baseline?: string;
  /** Which Node flags the baseline's agent runs with (default `own`: its release's). */
  baselineFlags?: BaselineFlags;
}

export async function runBench(o: RunOptions): Promise<{ results: BenchResults; ok: boolean }> {
  const print = o.print ?? ((l: string) => process.stdout.write(`${l}\n`));
  const available = o.available ?? SCENARIOS;
  const unknown = o.scenarios.filter((n) => !available.some((s) => s.name === n));
  if (unknown.length) throw new Error(`unknown scenario(s): ${unknown.join(', ')}; known: ${available.map((s) => s.name).join(', ')}`);
  const selected = o.scenarios.length ? available.filter((s) => o.scenarios.includes(s.name)) : available;
  const figures: Figure[] = [];
  const outcomes: BenchResults['scenarios'] = [];
  const started = new Date().toISOString();
  const baseline = o.baseline ? prepareBaseline(o.baseline, o.baselineFlags) : undefined;
  if (baseline) {
    print(`baseline ${baseline.ref} (${baseline.sha.slice(0, 12)}) built in ${dirname(dirname(baseline.dist.agent))}`);
    print(`agent Node flags: this tree [${AGENT_NODE_FLAGS.join(' ')}], baseline [${baseline.dist.agentFlags.join(' ')}]`);
  }
  for (const s of selected) {
    const dir = mkdtempSync(join(tmpdir(), `erp-edge-bench-${s.name}-`));
    const params: Record<string, unknown> = { repeats: o.repeats };
    const notes: string[] = [];
    const raw = new Map<string, { unit: string; target?: string; values: number[] }>();
    const ctx: ScenarioContext = {
      quick: o.quick,
      scale: o.scale,
      repeats: o.repeats,
      dir,
      log: (m) => print(`  [${s.name}] ${m}`),
      note: (t) => notes.push(t),
      param: (k, v) => (params[k] = v),
      record: (name, unit, value, target) => {
        if (!Number.isFinite(value)) throw new Error(`${s.name}: figure "${name}" is not a finite number (${value})`);
        const f = raw.get(name) ?? { unit, target, values: [] };
        f.values.push(value);
        raw.set(name, f);
      },
      recorded: (scenario, name) => figures.find((f) => f.scenario === scenario && f.name === name)?.values,
      baseline,
    };
    print(`▶ ${s.name}: ${s.description}`);
    const t0 = performance.now();
    let error: string | undefined;
    try {
      await s.run(ctx);
    } catch (err) {
      error = `${(err as Error).name === 'ScenarioUnavailable' ? 'unavailable: ' : ''}${(err as Error).message}`;
      print(`  ✗ ${s.name} failed: ${error}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    if (!error) {
      for (const [name, f] of raw) {
        const sorted = [...f.values].sort((a, b) => a - b);
        figures.push({ scenario: s.name, name, unit: f.unit, values: f.values, min: sorted[0]!, median: median(sorted), max: sorted[sorted.length - 1]!, target: f.target });
      }
    }
    outcomes.push({ name: s.name, status: error ? 'failed' : 'ok', error, seconds: (performance.now() - t0) / 1000, params, notes });
  }
  baseline?.remove();
  const results = benchResults.parse({ version: 1, started_at: started, quick: o.quick, machine: machineInfo(), versions: versions(), agent_node_flags: [...AGENT_NODE_FLAGS], scenarios: outcomes, figures });
  mkdirSync(dirname(o.out), { recursive: true });
  writeFileSync(o.out, `${JSON.stringify(results, null, 2)}\n`);
  for (const line of formatTable(results)) print(line);
  print(`results written to ${o.out}`);
  return { results, ok: outcomes.every((x) => x.status === 'ok') };
}

function fmt(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export function formatTable(r: BenchResults): string[] {
  const rows = [['scenario', 'figure', 'median', 'min', 'max', 'unit', 'target']];
  for (const f of r.figures) rows.push([f.scenario, f.name, fmt(f.median), fmt(f.min), fmt(f.max), f.unit, f.target ?? '']);
  for (const s of r.scenarios.filter((x) => x.status === 'failed')) rows.push([s.name, `FAILED: ${s.error ?? ''}`, '', '', '', '', '']);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i >= 2 && i <= 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  const out = ['', line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
  const notes = r.scenarios.flatMap((s) => s.notes.map((n) => `note (${s.name}): ${n}`));
  return [...out, '', ...notes];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      scenario: { type: 'string', multiple: true },
      repeats: { type: 'string' },
      scale: { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'string' },
      'baseline-flags': { type: 'string' },
    },
  });
  const baselineFlags = values['baseline-flags'];
  if (baselineFlags !== undefined && baselineFlags !== 'own' && baselineFlags !== 'current') throw new Error(`--baseline-flags must be own or current, not ${baselineFlags}`);
  const quick = values.quick ?? false;
  const { ok } = await runBench({
    quick,
    scenarios: (values.scenario ?? []).flatMap((s) => s.split(',')).filter(Boolean),
    repeats: values.repeats ? Number(values.repeats) : quick ? 1 : 3,
    scale: values.scale ? Number(values.scale) : 1,
    out: values.out ? resolve(values.out) : join(ROOT, 'bench', 'results', 'latest.json'),
    baseline: values.baseline,
    baselineFlags,
  });
  process.exit(ok ? 0 : 1);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
