/**
 * The collector host as a whole (#6 acceptance): the agent runs collectors through capture writers
 * and supervisors, with a real relay behind it, and reports what each one is doing.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { Agent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import { collectorKinds } from '../../agent/collectors/registry.js';
import { defineKind, type CollectorKind } from '../../agent/host/collector.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { formatStatus } from '../../agent/status.js';
import { isErpEdgeError } from '../../common/errors.js';
import { createLogger } from '../../common/logger.js';
import { topicLevel } from '../../common/wire-v1.js';
import { Relay } from '../../cloud-relay/relay.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { makeTempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/net.js';
import { runCli } from '../helpers/cli.js';
import { CliProcess, fetchAllEvents, relayYaml } from '../helpers/pipeline.js';
import { freePort } from '../helpers/net.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const BREAK_HOOK = pathToFileURL(join(import.meta.dirname, '../fixtures/break-modules.mjs')).href;

const testSchema = (type: string) => z.strictObject({ type: z.literal(type), name: topicLevel, stream: topicLevel.optional() });

/** Emits a record with ts NaN, one with a 10 MB payload (both refused at the writer), then 100 good ones. */
const refusedCodes: string[] = [];
const poison = defineKind({
  type: 'poison',
  schema: testSchema('poison'),
  load: async () => ({
    create: (_cfg, ctx) => ({
      async start() {
        void (async () => {
          for (const bad of [{ id: 'nan', ts: Number.NaN, data: {} }, { id: 'big', data: 'x'.repeat(10 * 1024 * 1024) }]) {
            try {
              await ctx.writer.append([bad]);
            } catch (err) {
              // The collector decides: this one skips the record (it is counted by the writer).
              refusedCodes.push(isErpEdgeError(err) ? err.code : String(err));
            }
          }
          await ctx.writer.append(Array.from({ length: 100 }, (_, i) => ({ id: `ok-${i}`, data: { i } })));
        })();
      },
      async stop() {},
    }),
  }),
});

/** Captures 10 records, then its loop dies once; the instance started after that runs on and captures 10 more. */
let diesStarts = 0;
const dies = defineKind({
  type: 'dies',
  schema: testSchema('dies'),
  load: async () => ({
    create: (_cfg, ctx) => ({
      async start() {
        const run = ++diesStarts;
        void (async () => {
          const from = (run - 1) * 10;
          await ctx.writer.append(Array.from({ length: 10 }, (_, i) => ({ id: `d-${from + i}`, data: { i: from + i } })));
          if (run === 1) ctx.fail(new Error('loop died: lost the connection to the source'));
        })();
      },
      async stop() {},
    }),
  }),
});

const kinds = [...(collectorKinds as unknown as CollectorKind[]), poison as unknown as CollectorKind, dies as unknown as CollectorKind];

let dir: string;
let cleanup: () => void;
const stops: (() => Promise<void>)[] = [];
beforeEach(() => {
  ({ dir, cleanup } = makeTempDir('agent-test-'));
  refusedCodes.length = 0;
  diesStarts = 0;
});
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  cleanup();
});

async function startRelay(): Promise<Relay> {
  const conf = join(dir, 'relay.yaml');
  writeFileSync(conf, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, embeddedPort: 0 }));
  const relay = await Relay.start(loadRelayConfig(conf), logger);
  stops.push(() => relay.stop());
  return relay;
}

function agentYaml(url: string, collectors: string): string {
  const p = join(dir, 'agent.yaml');
  writeFileSync(
    p,
    `site: s1
agent: a1
log_level: warn
data_dir: ./data
http:
  listen: 127.0.0.1:0
transport:
  url: ${url}
  ack_timeout: 2s
collector_restart:
  initial: 100ms
  max: 1s
collectors:
${collectors}`,
  );
  return p;
}

async function startAgent(configPath: string): Promise<Agent> {
  const agent = await Agent.start(loadAgentConfig(configPath, { kinds }), logger, { kinds });
  stops.push(() => agent.stop());
  return agent;
}

const statusOf = (agent: Agent, name: string) => agent.supervisors.find((s) => s.name === name)!.status();

describe('collector host', () => {
  it('a record with ts NaN and one of 10 MB are refused at the writer with typed errors and counted; nothing stalls', async () => {
    const relay = await startRelay();
    const agent = await startAgent(agentYaml(relay.brokerUrl, '  - type: poison\n    name: poison\n'));
    await waitFor('100 good records at the relay', async () => (await fetchAllEvents(relay.httpUrl, 's1', 'a1', 'poison')).length === 100, 20_000);
    expect(refusedCodes).toEqual(['ERP_RECORD_INVALID', 'ERP_RECORD_TOO_LARGE']);
    const s = statusOf(agent, 'poison');
    expect(s.writer).toMatchObject({ refused: 2, records: 100 });
    expect(s.state).toBe('running');
    await waitFor('all acked', () => agent.outbox.streamStatus().find((x) => x.stream === 'poison')?.ackedSeq === 100, 10_000);
  });

  it('a collector whose start throws and one whose loop dies are restarted with back-off; the others keep capturing; status shows them', async () => {
    const relay = await startRelay();
    const notADir = join(dir, 'plain-file');
    writeFileSync(notADir, 'x');
    mkdirSync(join(dir, 'in'));
    const agent = await startAgent(
      agentYaml(
        relay.brokerUrl,
        `  - type: file-drop
    name: broken
    path: ${join(notADir, 'orders')}
  - type: dies
    name: dies
  - type: file-drop
    name: orders
    path: ./in
    stable_time: 100ms
`,
      ),
    );
    writeFileSync(join(dir, 'in', 'o.csv'), 'id,qty\n1,5\n2,7\n');
    await waitFor('the good file at the relay', async () => (await fetchAllEvents(relay.httpUrl, 's1', 'a1', 'orders')).length === 2, 20_000);
    // The one that died was restarted and captured on.
    await waitFor('dies restarted and running', () => statusOf(agent, 'dies').restarts >= 1 && statusOf(agent, 'dies').state === 'running', 10_000);
    await waitFor('dies: 20 records at the relay', async () => (await fetchAllEvents(relay.httpUrl, 's1', 'a1', 'dies')).length === 20, 10_000);
    expect(statusOf(agent, 'dies').lastError?.message).toContain('loop died');
    // The one whose start throws keeps backing off, its failures counted.
    await waitFor('broken retried twice', () => statusOf(agent, 'broken').errorCount >= 3, 10_000);
    const broken = statusOf(agent, 'broken');
    expect(['backing-off', 'starting']).toContain(broken.state);
    expect(broken.lastError?.code).toBe('ENOTDIR');
    expect(broken.restarts).toBeGreaterThanOrEqual(2);

    // What `edge-agent status` shows, from the running agent over its control socket.
    const snap = (await controlRequest<AgentSnapshot>(controlSocketPath(join(dir, 'data'), ), 'GET', '/status'))!;
    expect(snap.running).toBe(true);
    expect(snap.collectors.map((c) => [c.name, c.state === 'starting' ? 'backing-off' : c.state])).toEqual([
      ['broken', 'backing-off'],
      ['dies', 'running'],
      ['orders', 'running'],
    ]);
    expect(snap.exceptions.find((e) => e.kind === 'collector_error')).toMatchObject({ count: 1 });
    const text = formatStatus(snap, Date.now());
    expect(text).toMatch(/^broken\tfile-drop\tbroken\t(backing-off|starting)/m);
    expect(text).toContain('ENOTDIR');
    expect(text).toMatch(/^streams$/m);
    expect(text).toMatch(/^broken\t0\t/m); // its stream is listed before its first record
  });

  it('a second agent on the same data_dir refuses to start', async () => {
    const relay = await startRelay();
    const cfg = agentYaml(relay.brokerUrl, '  - type: dies\n    name: dies\n');
    await startAgent(cfg);
    await expect(Agent.start(loadAgentConfig(cfg, { kinds }), logger, { kinds })).rejects.toMatchObject({ code: 'ERP_AGENT_RUNNING' });
  });
});

describe('lazy collector modules', () => {
  it('validate and status work while a collector module cannot be imported; run puts only that collector in error', async () => {
    const httpPort = await freePort();
    const relayConf = join(dir, 'relay.yaml');
    writeFileSync(relayConf, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, embeddedPort: await freePort() }));
    const relay = await Relay.start(loadRelayConfig(relayConf), logger);
    stops.push(() => relay.stop());
    mkdirSync(join(dir, 'in'));
    const conf = agentYaml(
      relay.brokerUrl,
      `  - type: file-drop
    name: orders
    path: ./in
  - type: synthetic
    name: load
    rate: 0
    total: 500
`,
    );
    // chokidar is what file-drop loads; make its import fail, as a broken native driver would.
    const env = { ERP_EDGE_TEST_BREAK_MODULES: 'chokidar' };
    const nodeArgs = ['--import', BREAK_HOOK];
    const validate = runCli('edge-agent', ['validate', '--config', conf], env, nodeArgs);
    expect(validate.stderr).toBe('');
    expect(validate.stdout).toMatch(/^OK /);
    expect(runCli('edge-agent', ['status', '--config', conf], env, nodeArgs).status).toBe(0);

    const agent = new CliProcess('edge-agent', conf, join(dir, 'agent.log'), undefined, nodeArgs);
    agent.start(env);
    stops.push(() => agent.kill('SIGTERM'));
    await waitFor('synthetic records at the relay', async () => (await fetchAllEvents(relay.httpUrl, 's1', 'a1', 'load').catch(() => [])).length === 500, 30_000, 200);
    const status = await waitFor(
      'status shows file-drop in error',
      () => {
        const r = runCli('edge-agent', ['status', '--config', conf, '--json'], env, nodeArgs);
        const s = JSON.parse(r.stdout) as AgentSnapshot;
        return s.running && s.collectors.find((c) => c.name === 'orders')?.state === 'error' ? s : undefined;
      },
      20_000,
      200,
    );
    const orders = status.collectors.find((c) => c.name === 'orders')!;
    expect(orders.lastError?.code).toBe('ERP_COLLECTOR_LOAD');
    expect(orders.lastError?.message).toContain('chokidar');
    expect(status.collectors.find((c) => c.name === 'load')?.state).toBe('running');
  });
});
