import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { nodeDist, WIN_NODE } from '../../installer/package-cache.js';
import { ScenarioUnavailable, type Scenario, type ScenarioContext } from '../types.js';
import type { SqliteBinding } from '../../agent/outbox/sqlite.js';

const ROOT = resolve(import.meta.dirname, '../..');
const WORKLOAD = join(ROOT, 'bench', 'lib', 'outbox-workload.ts');

interface Run {
  binding: string;
  node: string;
  events: number;
  append_s: number;
  drain_s: number;
}

async function runWorkload(node: string, binding: SqliteBinding, file: string, events: number, batch: number): Promise<Run> {
  const child = spawn(node, ['--import', 'tsx', WORKLOAD, file, String(events), String(batch)], {
    cwd: ROOT,
    env: { ...process.env, ERP_EDGE_SQLITE: binding, NODE_OPTIONS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += String(d)));
  child.stderr.on('data', (d) => (err += String(d)));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`the ${binding} workload failed (exit ${code}): ${err.slice(-2000)}`);
  const run = JSON.parse(out.trim().split('\n').pop()!) as Run;
  if (run.binding !== binding) throw new Error(`asked for ${binding}, the workload ran ${run.binding}`);
  return run;
}

/**
 * The two SQLite bindings of the outbox (agent/outbox/sqlite.ts) on the same workload: appends of
 * 100 records with a checkpoint each (FULL sync), then the forwarder's read-and-ack in pages of
 * 1 000. better-sqlite3 runs on this machine's Node (its addon is built for it), node:sqlite on the
 * Node the Windows executable embeds (WIN_NODE, from the packaging cache; fetched once if missing):
 * the Node differs, the code and the SQL do not. Each run in a fresh file; which goes first alternates.
 */
export const outboxBinding: Scenario = {
  name: 'outbox-binding',
  description: 'outbox append and read+ack on better-sqlite3 vs node:sqlite (same workload, fresh files)',
  async run(ctx: ScenarioContext) {
    const events = Math.max(2_000, Math.round((ctx.quick ? 50_000 : 200_000) * ctx.scale));
    const batch = 100;
    ctx.param('events', events);
    ctx.param('records per append', batch);
    let node22: string;
    try {
      node22 = join(nodeDist('linux-x64', WIN_NODE), 'bin', 'node');
    } catch (err) {
      throw new ScenarioUnavailable(`no Node ${WIN_NODE} for node:sqlite: ${(err as Error).message.split('\n')[0]}`);
    }
    const nodes: Record<SqliteBinding, string> = { 'better-sqlite3': process.execPath, 'node:sqlite': node22 };
    const rates: Record<SqliteBinding, { append: number; drain: number }[]> = { 'better-sqlite3': [], 'node:sqlite': [] };
    for (let r = 0; r < ctx.repeats; r++) {
      // Which goes first swaps every repeat (a warm page cache or a neighbour's load favours neither).
      const order: SqliteBinding[] = r % 2 === 0 ? ['better-sqlite3', 'node:sqlite'] : ['node:sqlite', 'better-sqlite3'];
      for (const binding of order) {
        const run = await runWorkload(nodes[binding], binding, join(ctx.dir, `${binding.replace(':', '-')}-${r}.db`), events, batch);
        ctx.log(`${binding} (node ${run.node}): append ${run.append_s.toFixed(2)} s, read+ack ${run.drain_s.toFixed(2)} s`);
        const append = events / run.append_s;
        const drain = events / run.drain_s;
        rates[binding].push({ append, drain });
        ctx.record(`append, ${binding}`, 'events/s', append);
        ctx.record(`read+ack, ${binding}`, 'events/s', drain);
      }
      const [b, n] = [rates['better-sqlite3'][r]!, rates['node:sqlite'][r]!];
      ctx.record('append: node:sqlite / better-sqlite3', 'ratio', n.append / b.append);
      ctx.record('read+ack: node:sqlite / better-sqlite3', 'ratio', n.drain / b.drain);
    }
    ctx.note(`better-sqlite3 on ${process.version} (this machine), node:sqlite on v${WIN_NODE} (the Windows executable's Node)`);
  },
};
