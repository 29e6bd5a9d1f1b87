import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../helpers/net.js';
import { makeTempDir } from '../helpers/tmp.js';

/**
 * `npm start` (scripts/start-demo.ts) as a user runs it: the npm process, on the sample configs
 * (copied to a temp folder with free ports: relative paths then point at the temp folder's var/).
 * A signal sent to npm must stop the demo cleanly: npm exits 0, no process of its group is left,
 * the outbox and the relay store are closed (their WAL files checkpointed away).
 */
const ROOT = resolve(import.meta.dirname, '../..');
const TOKEN = 'erp-edge-demo-token';

interface Demo {
  proc: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  http: string;
}

let dir: string;
let cleanup: () => void;
let ports: { broker: number; http: number; agent: number };
const running: ChildProcess[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = makeTempDir('erp-edge-demo-'));
  ports = { broker: await freePort(), http: await freePort(), agent: await freePort() };
  mkdirSync(join(dir, 'config'));
  const sample = (name: string) => readFileSync(join(ROOT, 'config', name), 'utf8');
  writeFileSync(join(dir, 'config', 'relay.yaml'), sample('relay.example.yaml').replace('port: 11883', `port: ${ports.broker}`).replace('port: 8470', `port: ${ports.http}`));
  writeFileSync(join(dir, 'config', 'agent.yaml'), sample('agent.example.yaml').replace('127.0.0.1:11883', `127.0.0.1:${ports.broker}`).replace('127.0.0.1:9465', `127.0.0.1:${ports.agent}`));
});

afterEach(() => {
  // A test that failed half-way must not leave a demo holding its ports.
  for (const p of running.splice(0)) if (groupAlive(p.pid!)) process.kill(-p.pid!, 'SIGKILL');
  cleanup();
});

async function startDemo(...args: string[]): Promise<Demo> {
  // Its own process group, as a terminal gives a foreground job: the group can then be signalled
  // as Ctrl+C does, and checked for leftovers.
  const proc = spawn('npm', ['start', ...(args.length ? ['--', ...args] : [])], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ERP_EDGE_RELAY_CONFIG: join(dir, 'config', 'relay.yaml'), ERP_EDGE_AGENT_CONFIG: join(dir, 'config', 'agent.yaml'), ERP_EDGE_API_TOKEN: '' },
  });
  running.push(proc);
  let err = '';
  proc.stderr!.on('data', (d) => (err += String(d)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  const up = new Promise<void>((resolveUp, reject) => {
    proc.stderr!.on('data', () => err.includes('erp-edge demo running') && resolveUp());
    void exited.then(({ code }) => reject(new Error(`npm start exited with ${code} before the demo ran:\n${err}`)));
  });
  await up;
  return { proc, stderr: () => err, exited, http: `http://127.0.0.1:${ports.http}` };
}

async function events(demo: Demo, stream: string): Promise<{ id: string; correlation_id: string | null; data: unknown }[]> {
  const res = await fetch(`${demo.http}/api/events?site=demo-site&agent=agent-01&stream=${stream}&limit=1000`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { events: { id: string; correlation_id: string | null; data: unknown }[] }).events;
}

/** True while any process of the group is alive (npm, node, or a child either started). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

async function expectCleanStop(demo: Demo): Promise<void> {
  expect(await demo.exited).toEqual({ code: 0, signal: null });
  expect(demo.stderr()).toContain('erp-edge demo stopped');
  // npm exits after its child; a grandchild (esbuild's service) may take a moment longer to go.
  await waitFor('no process of the demo left', () => !groupAlive(demo.proc.pid!), 10_000);
  // Closed, not killed: SQLite removes the WAL on the last clean close, the agent its control socket.
  expect(readdirSync(join(dir, 'var', 'agent')).sort()).toEqual(['outbox.db']);
  expect(readdirSync(join(dir, 'var', 'relay')).sort()).toEqual(['relay.db', 'relay.db.counters.json']);
}

describe('npm start (the demo)', () => {
  it('runs both samples through; SIGTERM to npm stops it cleanly; after a restart SIGINT to the group (Ctrl+C) does too; --reset starts over', async () => {
    let demo = await startDemo();
    copyFileSync(join(ROOT, 'config/samples/orders-sample.csv'), join(dir, 'var/inbox/orders/orders-sample.csv'));
    copyFileSync(join(ROOT, 'config/samples/stock-sample.jsonl'), join(dir, 'var/inbox/stock/stock-sample.jsonl'));
    await waitFor('3 orders at the relay', async () => (await events(demo, 'orders')).length === 3, 20_000);
    await waitFor('5 stock rows at the relay', async () => (await events(demo, 'stock')).length === 5, 20_000);
    const stock = await events(demo, 'stock');
    expect(stock[0]!.correlation_id).toMatch(/^file:[0-9a-f]{16}$/);
    expect(stock[0]!.data).toMatchObject({ file: 'stock-sample.jsonl', line: 1, fields: { sku: 'SKU-4411', on_hand: 240 } });
    // The service-manager case: one SIGTERM, to npm only.
    process.kill(demo.proc.pid!, 'SIGTERM');
    await expectCleanStop(demo);

    // State is kept across a restart; Ctrl+C reaches npm and node both (npm forwards it once more).
    demo = await startDemo();
    expect(await events(demo, 'orders')).toHaveLength(3);
    process.kill(-demo.proc.pid!, 'SIGINT');
    await expectCleanStop(demo);
    expect(readdirSync(join(dir, 'var/inbox/orders/archive'))).toHaveLength(1);

    demo = await startDemo('--reset');
    expect(demo.stderr()).toMatch(/demo reset: .*var\/agent/);
    expect(await events(demo, 'orders')).toEqual([]);
    expect(existsSync(join(dir, 'var/inbox/orders/archive'))).toBe(false);
    process.kill(demo.proc.pid!, 'SIGTERM');
    await expectCleanStop(demo);
  }, 120_000);

  it('--reset refuses to delete anything outside the demo var/ folder', async () => {
    const site = join(dir, 'site');
    mkdirSync(site);
    const agentCfg = join(dir, 'config', 'agent.yaml');
    writeFileSync(agentCfg, readFileSync(agentCfg, 'utf8').replace('data_dir: ../var/agent', `data_dir: ${site}`));
    await expect(startDemo('--reset')).rejects.toThrow(/exited with 1[\s\S]*--reset deletes only the demo's state under .*: refusing .*site/);
    expect(existsSync(site)).toBe(true);
  }, 60_000);
});
