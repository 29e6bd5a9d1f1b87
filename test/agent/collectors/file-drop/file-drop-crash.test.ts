/**
 * kill -9 a process running a file-drop collector at random moments while four files are ingested,
 * one of them still growing (half its last row written) until the fourth kill: afterwards every row
 * is in the outbox exactly once, whole, in drop order, and every file is archived.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../../../agent/outbox/outbox.js';
import { killHard, startCollectorProcess } from '../../../helpers/collector-process.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const SCRIPT = fileURLToPath(new URL('../../../helpers/file-drop-run.ts', import.meta.url));
const FILES = 4;
const ROWS = 2_500;
const KILLS = 12;
const GROW_AT = 4;
// No /proc check (the test writes the files itself), so the held-back half row is the guard.
const CONFIG = { stable_time: '100ms', batch_size: 50, writer_check: false, empty_stable_time: '30s' };

let tmp: ReturnType<typeof makeTempDir>;
let live: ChildProcess | undefined;

beforeEach(() => (tmp = makeTempDir('file-drop-crash-')));
afterEach(async () => {
  await killHard(live);
  tmp.cleanup();
});

function startChild(): Promise<ChildProcess> {
  return startCollectorProcess(SCRIPT, [tmp.dir, JSON.stringify(CONFIG)], (c) => (live = c));
}

function csv(from: number): string {
  let s = 'id,sku,qty\n';
  for (let i = from; i < from + ROWS; i++) s += `${i},SKU-${i},${i * 10}\n`;
  return s;
}

function archived(drop: string): string[] {
  const root = path.join(drop, 'archive');
  return fs.existsSync(root) ? fs.readdirSync(root).flatMap((day) => fs.readdirSync(path.join(root, day))) : [];
}

describe('file-drop collector under kill -9', () => {
  it(`${KILLS} kills while four files are ingested, one still growing: every row once, whole, in drop order`, async () => {
    const drop = path.join(tmp.dir, 'drop');
    fs.mkdirSync(drop);
    const contents = Array.from({ length: FILES }, (_, k) => csv(k * ROWS + 1));
    const cut = contents[0]!.length - 7; // inside the last row
    fs.writeFileSync(path.join(drop, 'f0.csv'), contents[0]!.slice(0, cut));
    for (let k = 1; k < FILES; k++) fs.writeFileSync(path.join(drop, `f${k}.csv`), contents[k]!);

    for (let i = 0; i < KILLS; i++) {
      const child = await startChild();
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 400)); // the fault lands at a random point
      await killHard(child);
      if (i === GROW_AT) {
        const where = [path.join(drop, '.processing', 'orders', 'f0.csv'), path.join(drop, 'f0.csv')].find((p) => fs.existsSync(p));
        expect(where, 'f0.csv waits for its last row, unarchived').toBeDefined();
        fs.appendFileSync(where!, contents[0]!.slice(cut));
      }
    }
    const child = await startChild();
    await waitFor('all files archived', () => archived(drop).length === FILES, 60_000);
    await killHard(child);

    const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db')));
    try {
      const recs = outbox.readPending('orders', 0, 1_000_000).map((r) => JSON.parse(r.payload) as { data: { file: string; fields: Record<string, string> } });
      const ids = recs.map((r) => Number(r.data.fields.id));
      expect(ids).toEqual(Array.from({ length: FILES * ROWS }, (_, i) => i + 1)); // none lost, none doubled, in order
      expect(recs.filter((r) => r.data.fields.qty !== String(Number(r.data.fields.id) * 10))).toEqual([]); // none half-written
      expect([...new Set(recs.map((r) => r.data.file))]).toEqual(['f0.csv', 'f1.csv', 'f2.csv', 'f3.csv']);
      expect(archived(drop).sort()).toEqual(['f0.csv', 'f1.csv', 'f2.csv', 'f3.csv']);
      expect(fs.existsSync(path.join(drop, 'error'))).toBe(false);
    } finally {
      outbox.close();
    }
  }, 120_000);
});
