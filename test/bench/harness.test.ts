import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { runBench, SCENARIOS } from '../../bench/run.js';
import { benchResults, ScenarioUnavailable, type Scenario } from '../../bench/types.js';
import { makeTempDir } from '../helpers/tmp.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';

const ROOT = resolve(import.meta.dirname, '../..');
const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);

/** Every figure each scenario must report: a scenario that ran but measured nothing is a failure. */
const EXPECTED: Record<string, string[]> = {
  'broker-baseline': ['raw QoS 1, 1 record/message', 'raw QoS 1, 100 records/message'],
  'durable-e2e': ['durable end-to-end throughput', 'ratio to raw QoS 1 (1 record/message)', 'agent RSS under load (max)'],
  'backlog-replay': ['replay: broker start → relay store complete', 'replay: first → last relay commit', 'erp-edge events lost after agent kill -9'],
  latency: ['latency p50', 'latency p95', 'latency p99'],
  footprint: ['agent RSS idle', 'agent CPU idle', 'agent RSS with backlog on disk', 'agent RSS replaying the backlog (max)'],
  'mosquitto-bridge': ['bridge replay: cloud start → all delivered', 'bridge events lost after kill -9', 'bridge events lost after SIGTERM restart (control)'],
  'file-drop-bulk': ['csv-parse alone, same file', 'end to end: rename → relay has every row', 'ratio to csv-parse alone', 'agent RSS (max)', 'rename → every row in the outbox'],
  'sql-snapshot': ['plain streamed SELECT (cursor, FETCH 10000)', 'snapshot into the outbox (agent, service flags)', 'ratio to the plain SELECT', 'agent RSS during the snapshot (max)', 'snapshot into the outbox (in-process, same code)'],
  // At the harness's scale 0.01 both offered rates round to one of 100 rows/s (~5 s with its own cluster).
  'fleet-health': ["relay CPU per 1 000 agents' health messages", 'idle relay CPU over the same time (reference)', 'relay CPU at 1 000 agents, health every 15 s', 'GET /metrics scrape (all agents)'],
  'scanner-tcp': ['scanner-tcp end to end: first byte → relay has every scan', 'file-drop end to end, same run and row count', 'scanner-tcp rate / file-drop rate', 'scanner-tcp agent RSS (max)'],
  'sql-logical': ['capture rate into the outbox at 100 rows/s offered', 'capture rate / offered at 100 rows/s offered', 'capture lag p99 (committed_at → outbox) at 100 rows/s offered', 'slot lag when the load stops at 100 rows/s offered', 'agent RSS during logical capture (max, service flags)'],
  'outbox-binding': ['append, better-sqlite3', 'append, node:sqlite', 'read+ack, better-sqlite3', 'read+ack, node:sqlite', 'append: node:sqlite / better-sqlite3'],
  'sink-delivery': ['sqlite-webhook_events_per_s', 'sqlite-webhook_cpu_ms_per_100k', 'postgres-webhook_events_per_s', 'sqlite-mqtt_events_per_s', 'sqlite-mqtt_cpu_ms_per_100k'],
  'relay-store': ['sqlite-1_events_per_s', 'sqlite-1_cpu_ms_per_100k', 'postgres-1_events_per_s', 'postgres-3-round-robin_rewinds', 'postgres-3-sticky_cpu_ms_per_100k'],
};

describe.skipIf(!hasMosquitto)('npm run bench -- --quick (tiny sizes)', () => {
  beforeAll(() => {
    // The harness measures the compiled agent, as a service runs it: the whole build (the relay's
    // dashboard files are copied beside the compiled code, and the relay needs them to start).
    const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    expect(build.status, build.stdout + build.stderr).toBe(0);
  }, 120_000);

  it('runs every scenario, prints a table and writes results that validate', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const out = join(dir, 'latest.json');
      const lines: string[] = [];
      const { results, ok } = await runBench({ quick: true, scenarios: [], repeats: 1, scale: 0.01, out, print: (l) => lines.push(l) });
      const failed = results.scenarios.filter((s) => s.status !== 'ok');
      expect(failed, JSON.stringify(failed)).toEqual([]);
      expect(ok).toBe(true);
      expect(results.scenarios.map((s) => s.name)).toEqual(SCENARIOS.map((s) => s.name));
      // The file on disk is the same document and validates against the schema.
      const onDisk = benchResults.parse(JSON.parse(readFileSync(out, 'utf8')));
      expect(onDisk.figures.length).toBe(results.figures.length);
      for (const [scenario, names] of Object.entries(EXPECTED)) {
        for (const name of names) {
          const f = results.figures.find((x) => x.scenario === scenario && x.name === name);
          expect(f, `${scenario}: ${name}`).toBeDefined();
          expect(f!.values.length).toBe(1);
          expect(Number.isFinite(f!.median)).toBe(true);
        }
      }
      // erp-edge loses nothing when its agent is killed with -9 (a count, not a timing).
      expect(results.figures.find((f) => f.name === 'erp-edge events lost after agent kill -9')!.median).toBe(0);
      const table = lines.join('\n');
      expect(table).toContain('durable end-to-end throughput');
      expect(table).toContain(`results written to ${out}`);
    } finally {
      cleanup();
    }
  }, 300_000);

  it('a scenario that cannot run says why and fails the run, recording no figure for it', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const out = join(dir, 'x.json');
      const unavailable: Scenario = {
        name: 'needs-something',
        description: 'cannot run here',
        run: async (ctx) => {
          ctx.record('half-measured', 'events/s', 123);
          throw new ScenarioUnavailable('the thing it needs is not installed');
        },
      };
      const lines: string[] = [];
      const { results, ok } = await runBench({ quick: true, scenarios: [], repeats: 1, scale: 0.01, out, print: (l) => lines.push(l), available: [unavailable] });
      expect(ok).toBe(false);
      expect(results.scenarios[0]).toMatchObject({ status: 'failed', error: 'unavailable: the thing it needs is not installed' });
      expect(results.figures).toEqual([]);
      expect(lines.join('\n')).toContain('FAILED: unavailable: the thing it needs is not installed');
      await expect(runBench({ quick: true, scenarios: ['no-such'], repeats: 1, scale: 0.01, out, print: () => {} })).rejects.toThrow(/unknown scenario\(s\): no-such/);
    } finally {
      cleanup();
    }
  });
});
