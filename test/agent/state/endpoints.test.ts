/**
 * The agent's HTTP endpoints (#9): GET /healthz and GET /metrics of a real agent, with test
 * collector kinds the test drives, and a broker address where nothing listens (a backlog builds).
 */
import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { Agent } from '../../../agent/agent.js';
import { loadAgentConfig } from '../../../agent/config.js';
import { collectorKinds } from '../../../agent/collectors/registry.js';
import { defineKind, type CollectorContext, type CollectorKind } from '../../../agent/host/collector.js';
import { createLogger } from '../../../common/logger.js';
import { health } from '../../../common/wire-v2.js';
import { formatStatus } from '../../../agent/status.js';
import { topicLevel } from '../../../common/wire-v1.js';
import { freePort, waitFor } from '../../helpers/net.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { hasPromtool, promtoolCheckMetrics } from '../../helpers/promtool.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const testSchema = (type: string) => z.strictObject({ type: z.literal(type), name: topicLevel, stream: topicLevel.optional() });

/** Captures only what the test appends through its context (the running instance's). */
const manualCtx = new Map<string, CollectorContext>();
const manual = defineKind({
  type: 'manual',
  schema: testSchema('manual'),
  load: async () => ({
    create: (cfg, ctx) => ({
      async start() {
        manualCtx.set(cfg.name, ctx);
      },
      async stop() {},
    }),
  }),
});

/** Runs until the test breaks its source: then its loop dies and every restart fails until mended. */
const source = { broken: false };
const breakable = defineKind({
  type: 'breakable',
  schema: testSchema('breakable'),
  load: async () => ({
    create: (_cfg, ctx) => ({
      async start() {
        if (source.broken) throw new Error('source unreachable: connection refused');
        manualCtx.set('breakable', ctx);
      },
      async stop() {},
    }),
  }),
});

/** Its module cannot be loaded (a broken driver): the supervisor leaves it in `error`. */
const unloadable = defineKind({
  type: 'unloadable',
  schema: testSchema('unloadable'),
  load: () => Promise.reject(new Error('Cannot find module "fancy-driver"')),
});

const kinds = [...(collectorKinds as unknown as CollectorKind[]), ...([manual, breakable, unloadable] as unknown as CollectorKind[])];

let dir: string;
let cleanup: () => void;
const stops: (() => Promise<void>)[] = [];
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('agent-http-test-'));
  manualCtx.clear();
  source.broken = false;
});
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  cleanup();
});

interface YamlOptions {
  collectors: string;
  listen?: string;
  outbox?: string;
  healthz?: string;
}

/** Broker port where nothing listens: the forwarder keeps retrying, every record stays pending. */
async function writeConfig(o: YamlOptions): Promise<string> {
  const p = join(dir, 'agent.yaml');
  writeFileSync(
    p,
    `site: s1
agent: a1
log_level: warn
data_dir: ./data
${o.outbox ? `outbox:\n${o.outbox}` : ''}
http:
  listen: ${o.listen ?? '127.0.0.1:0'}
  healthz:
${o.healthz ?? '    collector_failing_for: 0ms\n    disconnected_for: 1h\n    min_disk_free: 1'}
transport:
  url: mqtt://127.0.0.1:${await freePort()}
collector_restart:
  initial: 50ms
  max: 200ms
collectors:
${o.collectors}`,
  );
  return p;
}

async function startAgent(o: YamlOptions): Promise<Agent> {
  const path = await writeConfig(o);
  const agent = await Agent.start(loadAgentConfig(path, { kinds }), logger, { kinds });
  stops.push(() => agent.stop());
  return agent;
}

async function get(agent: Agent, path: string): Promise<{ status: number; type: string | null; text: string }> {
  const res = await fetch(`${agent.httpUrl!}${path}`);
  return { status: res.status, type: res.headers.get('content-type'), text: await res.text() };
}

/** The value of one series in an exposition text (labels exactly as written, in order). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function records(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => ({ id: `r-${from + i}`, data: { i: from + i, pad: 'x'.repeat(i % 7) } }));
}

describe('GET /healthz', () => {
  it('is 200 while all is well, then 503 naming the collector once its source breaks, and 200 again once mended', async () => {
    const agent = await startAgent({ collectors: '  - type: breakable\n    name: breakable\n  - type: manual\n    name: orders\n' });
    const ok = await get(agent, '/healthz');
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.text)).toEqual({ status: 'ok' });

    source.broken = true;
    manualCtx.get('breakable')!.fail(new Error('source unreachable: connection reset'));
    const failing = await waitFor('503 from /healthz', async () => {
      const r = await get(agent, '/healthz');
      return r.status === 503 ? r : undefined;
    });
    const body = JSON.parse(failing.text) as { status: string; reasons: { check: string; collector?: string; message: string }[] };
    expect(body.status).toBe('failing');
    expect(body.reasons).toHaveLength(1);
    expect(body.reasons[0]).toMatchObject({ check: 'collector', collector: 'breakable' });
    expect(body.reasons[0]!.message).toMatch(/collector "breakable" \(breakable\) failing for \d+s, now (backing-off|starting), \d+ error\(s\); last: /);

    source.broken = false;
    await waitFor('200 again after the restart', async () => (await get(agent, '/healthz')).status === 200);
  });

  it('is 503 for a collector in error (its module cannot load) while the others run', async () => {
    const agent = await startAgent({ collectors: '  - type: unloadable\n    name: erp\n  - type: manual\n    name: orders\n' });
    const r = await get(agent, '/healthz');
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text) as { reasons: { check: string; collector?: string; message: string }[] };
    expect(body.reasons.map((x) => [x.check, x.collector])).toEqual([['collector', 'erp']]);
    expect(body.reasons[0]!.message).toContain('now error');
    expect(body.reasons[0]!.message).toContain('ERP_COLLECTOR_LOAD');
  });

  it('waits out collector_failing_for: a collector that just failed is not yet a 503', async () => {
    const agent = await startAgent({
      collectors: '  - type: unloadable\n    name: erp\n',
      healthz: '    collector_failing_for: 1h\n    disconnected_for: 1h\n    min_disk_free: 1',
    });
    expect(agent.state.snapshot().collectors[0]!.state).toBe('error');
    expect((await get(agent, '/healthz')).status).toBe(200);
  });

  it('is 503 when the outbox is full', async () => {
    const agent = await startAgent({
      collectors: '  - type: manual\n    name: orders\n',
      outbox: '  max_events: 50\n  cap_policy: block\n',
    });
    expect((await get(agent, '/healthz')).status).toBe(200);
    await manualCtx.get('orders')!.writer.append(records(50));
    expect(agent.outbox.usage().full).toBe(true);
    const r = await get(agent, '/healthz');
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text) as { reasons: { check: string; message: string }[] };
    expect(body.reasons.map((x) => x.check)).toEqual(['outbox_full']);
    expect(body.reasons[0]!.message).toContain('50 of 50 events');
  });

  it('is 503 naming the disk when the outbox disk is at its floor (outbox.disk_min_free)', async () => {
    const agent = await startAgent({
      collectors: '  - type: manual\n    name: orders\n',
      outbox: '  disk_min_free: 1000000GB\n',
    });
    expect((await get(agent, '/healthz')).status).toBe(200);
    const full = once(agent.outbox, 'full');
    // Waits for the disk (never returns while the floor stands); ends with the agent's stop.
    void manualCtx.get('orders')!.writer.append(records(1)).catch(() => undefined);
    await full;
    const r = await get(agent, '/healthz');
    expect(r.status).toBe(503);
    const body = JSON.parse(r.text) as { reasons: { check: string; message: string }[] };
    expect(body.reasons.map((x) => x.check)).toEqual(['outbox_full']);
    expect(body.reasons[0]!.message).toMatch(/^the disk holding the outbox is full: collectors are paused \(.* free on the file system; appends leave/);
  });

  it('is 503 when disconnected longer than disconnected_for, or when free disk is below min_disk_free', async () => {
    const agent = await startAgent({
      collectors: '  - type: manual\n    name: orders\n',
      healthz: '    collector_failing_for: 1h\n    disconnected_for: 0ms\n    min_disk_free: 1000000GB',
    });
    const body = JSON.parse((await get(agent, '/healthz')).text) as { reasons: { check: string }[] };
    expect(body.reasons.map((x) => x.check).sort()).toEqual(['disconnected', 'disk_free']);
  });
});

describe('GET /metrics', () => {
  it('passes promtool check metrics, and its pending figures equal the outbox own counts during a backlog', async () => {
    const agent = await startAgent({ collectors: '  - type: manual\n    name: orders\n  - type: unloadable\n    name: erp\n' });
    const writer = manualCtx.get('orders')!.writer;
    for (const [batch, from] of [
      [120, 0],
      [80, 120],
    ] as const) {
      await writer.append(records(batch, from));
      const m = await get(agent, '/metrics');
      expect(m.status).toBe(200);
      expect(m.type).toContain('text/plain');
      const own = agent.outbox.streamStatus().find((s) => s.stream === 'orders')!;
      expect(own.pending).toBe(from + batch);
      expect(sample(m.text, 'erp_edge_outbox_pending_events{stream="orders"}')).toBe(own.pending);
      expect(sample(m.text, 'erp_edge_outbox_pending_bytes{stream="orders"}')).toBe(own.pendingBytes);
      expect(sample(m.text, 'erp_edge_outbox_oldest_pending_age_seconds{stream="orders"}')).toBeGreaterThanOrEqual(0);
      expect(sample(m.text, 'erp_edge_outbox_bytes')).toBe(agent.outbox.usage().bytes);
      expect(sample(m.text, 'erp_edge_capture_records_total{collector="orders"}')).toBe(from + batch);
      // The health message says the same.
      const h = health.parse(agent.state.health());
      expect(h.streams.find((s) => s.stream === 'orders')).toMatchObject({ pending: own.pending, pending_bytes: own.pendingBytes });
    }
    const m = (await get(agent, '/metrics')).text;
    expect(sample(m, 'erp_edge_forwarder_connected')).toBe(0);
    expect(sample(m, 'erp_edge_collector_state{collector="orders",type="manual",state="running"}')).toBe(1);
    expect(sample(m, 'erp_edge_collector_state{collector="erp",type="unloadable",state="error"}')).toBe(1);
    expect(sample(m, 'erp_edge_collector_state{collector="erp",type="unloadable",state="running"}')).toBe(0);
    expect(sample(m, 'erp_edge_collector_errors_total{collector="erp"}')).toBe(1);
    expect(sample(m, 'erp_edge_disk_free_bytes')).toBeGreaterThan(0);
    expect(m).toMatch(/^erp_edge_agent_info\{version="[^"]+"\} 1$/m);
    expect(m).toMatch(/^erp_edge_forwarder_last_ack_age_seconds \d/m);
    expect(m).toMatch(/^process_resident_memory_bytes \d/m);
    // No record ids or file names as labels: every label value is a stream, collector, type, state or version.
    expect(m).not.toContain('r-1');

    if (!hasPromtool()) return;
    const check = promtoolCheckMetrics(m);
    expect(check.output).toBe('');
    expect(check.ok).toBe(true);
  });
});

describe('health message and status', () => {
  it('carry per-stream backlog and age, per-collector state, failing streak, error age and error/ files, disk and process figures; status shows the same states', async () => {
    mkdirSync(join(dir, 'in', 'error'), { recursive: true });
    writeFileSync(join(dir, 'in', 'error', 'bad.csv'), 'not,a\nvalid');
    const agent = await startAgent({
      collectors: '  - type: file-drop\n    name: drops\n    path: ./in\n  - type: manual\n    name: orders\n  - type: unloadable\n    name: erp\n',
    });
    await manualCtx.get('orders')!.writer.append(records(30));
    const h = health.parse(agent.state.health());
    const own = agent.outbox.streamStatus().find((s) => s.stream === 'orders')!;
    expect(h.streams.find((s) => s.stream === 'orders')).toMatchObject({ pending: 30, pending_bytes: own.pendingBytes, oldest_pending_at: own.oldestPendingTs });
    expect(h.streams.find((s) => s.stream === 'orders')!.oldest_pending_age_s).toBeGreaterThanOrEqual(0);
    const byName = new Map(h.collectors.map((c) => [c.name, c]));
    expect(byName.get('drops')).toMatchObject({ state: 'running', error_files: 1, failing_since: null });
    expect(byName.get('orders')).toMatchObject({ state: 'running', records: 30 });
    const erp = byName.get('erp')!;
    expect(erp).toMatchObject({ state: 'error', error_count: 1 });
    expect(erp.failing_since).toBeTypeOf('number');
    expect(erp.last_error).toMatchObject({ code: 'ERP_COLLECTOR_LOAD' });
    expect(erp.last_error!.age_s).toBeGreaterThanOrEqual(0);
    expect(h.forwarder).toMatchObject({ connected: false, last_ack_at: null, capture_rate: expect.any(Number), forward_rate: expect.any(Number) });
    expect(h.forwarder!.connected_changed_at).toBeTypeOf('number');
    expect(h.outbox!.file_bytes).toBeGreaterThan(0);
    expect(h.disk!.free_bytes).toBeGreaterThan(0);
    expect(h.process!.rss_bytes).toBeGreaterThan(0);
    expect(h.uptime_s).toBeGreaterThanOrEqual(0);

    const text = formatStatus(agent.state.snapshot(), Date.now());
    for (const c of h.collectors) expect(text).toMatch(new RegExp(`^${c.name}\t${c.type}\t${c.stream}\t${c.state}\t`, 'm'));
    expect(text).toMatch(/^disk: .+ free of .+; outbox files /m);
    expect(text).toMatch(/^drops\tfile-drop\tdrops\trunning\t\S+ ago\t0\t0\t1\t-$/m);
    expect(text).toMatch(/^erp\tunloadable\terp\terror\tfailing for \d+s\t1\t/m);
  });
});

describe('listen address', () => {
  let blocker: Server | undefined;
  afterEach(() => new Promise<void>((resolve) => (blocker ? blocker.close(() => resolve()) : resolve())));

  it('listens where http.listen says; off turns the endpoints off', async () => {
    const port = await freePort();
    const agent = await startAgent({ collectors: '  - type: manual\n    name: orders\n', listen: `127.0.0.1:${port}` });
    expect(agent.httpUrl).toBe(`http://127.0.0.1:${port}`);
    expect((await get(agent, '/healthz')).status).toBe(200);
    expect((await get(agent, '/nothing')).status).toBe(404);
    await stops.pop()!();

    const off = await startAgent({ collectors: '  - type: manual\n    name: orders\n', listen: 'off' });
    expect(off.httpUrl).toBeUndefined();
  });

  it('a port in use stops the start with ERP_PORT_IN_USE naming http.listen, and leaves nothing behind', async () => {
    const port = await freePort();
    blocker = createServer();
    await new Promise<void>((resolve) => blocker!.listen(port, '127.0.0.1', () => resolve()));
    const path = await writeConfig({ collectors: '  - type: manual\n    name: orders\n', listen: `127.0.0.1:${port}` });
    const err = await Agent.start(loadAgentConfig(path, { kinds }), logger, { kinds }).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string },
    );
    expect(err?.code).toBe('ERP_PORT_IN_USE');
    expect(err?.message).toContain('`http.listen`');
    expect(err?.message).toContain(String(port));
    // The control socket and the outbox were released: the same data_dir starts on another port.
    await startAgent({ collectors: '  - type: manual\n    name: orders\n' });
  });
});
