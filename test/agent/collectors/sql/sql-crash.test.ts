/**
 * kill -9 of a process running a sql collector, at random moments of the initial snapshot of
 * 200 000 PostgreSQL rows, then a restart: every row arrives once, between one start and one end
 * marker, and the process's memory stays flat while it reads.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { killHard, startCollectorProcess } from '../../../helpers/collector-process.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { createTestDatabase, type TestDatabase } from '../../../helpers/sql-databases.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const SCRIPT = fileURLToPath(new URL('../../../helpers/sql-run.ts', import.meta.url));
const ROWS = 200_000;
const KILLS = 5;

let db: TestDatabase;
let tmp: ReturnType<typeof makeTempDir>;
let live: ChildProcess | undefined;

beforeEach(async () => {
  db = await createTestDatabase('pg');
  await db.exec('CREATE TABLE order_lines (id bigint PRIMARY KEY, sku text NOT NULL, qty int NOT NULL, updated_at timestamp(6) NOT NULL)');
  await db.exec(`INSERT INTO order_lines SELECT g, 'SKU-' || g, g % 100, timestamp '2026-01-01' + g * interval '1 second' FROM generate_series(1, ${ROWS}) g`);
  tmp = makeTempDir('sql-crash-');
});

afterEach(async () => {
  await killHard(live);
  await db?.drop();
  tmp?.cleanup();
});

function config() {
  return { type: 'sql', name: 'erp', driver: 'pg', connection: db.connection, batch_size: 1_000, tables: [{ table: 'order_lines', key: ['id'], mode: 'incremental', version_column: 'updated_at' }] };
}

function startChild(): Promise<ChildProcess> {
  return startCollectorProcess(SCRIPT, [tmp.dir, JSON.stringify(config())], (c) => (live = c));
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

interface Rec {
  data: { op: string; key?: { id: number | string }; rows?: number };
}

describe('sql collector under kill -9 during its initial snapshot (real PostgreSQL)', () => {
  it(`${KILLS} kills during a snapshot of ${ROWS} rows, then a restart: every row once, one start and one end, flat memory`, async () => {
    const reader = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    const progress = () => reader.getCheckpoint<{ snapshot?: { rows: number } }>('sql:erp', 'table:order_lines')?.snapshot?.rows ?? 0;
    // Each kill lands at a random row of the snapshot's first half, rising: the last run still has
    // half of it to read, which is what the memory samples below measure.
    const killAt = Array.from({ length: KILLS }, () => Math.floor(Math.random() * (ROWS / 2))).sort((a, b) => a - b);
    for (const at of killAt) {
      const child = await startChild();
      await waitFor(`snapshot past row ${at}`, () => progress() >= at, 60_000, 5);
      await killHard(child);
    }
    expect(progress()).toBeLessThan(ROWS);
    const child = await startChild();
    const samples: number[] = [];
    const sampler = setInterval(() => samples.push(rssMb(child.pid!)), 50);
    try {
      // The table's checkpoint loses its snapshot progress in the transaction that commits the end marker.
      await waitFor('snapshot done', () => reader.getCheckpoint<{ snapshot?: unknown }>('sql:erp', 'table:order_lines')?.snapshot === undefined && reader.getCheckpoint('sql:erp', 'table:order_lines'), 120_000, 200);
    } finally {
      clearInterval(sampler);
    }
    await killHard(child);
    const recs = reader.readPending('erp', 0, 1_000_000).map((r) => JSON.parse(r.payload) as Rec);
    reader.close();
    const ids = recs.filter((r) => r.data.op === 'snapshot').map((r) => Number(r.data.key!.id));
    expect(ids.length).toBe(ROWS);
    expect(ids).toEqual(Array.from({ length: ROWS }, (_, i) => i + 1)); // each once, in key order
    expect(recs.filter((r) => r.data.op === 'snapshot_start')).toHaveLength(1);
    expect(recs.filter((r) => r.data.op === 'snapshot_end').map((r) => r.data.rows)).toEqual([ROWS]);
    // Flat: what the last run reads grows the outbox, not the process (pages of 1 000 rows).
    const settled = samples.slice(Math.floor(samples.length / 4));
    expect(samples.length).toBeGreaterThan(10);
    expect(Math.max(...settled) - Math.min(...settled)).toBeLessThan(40);
  }, 240_000);
});
