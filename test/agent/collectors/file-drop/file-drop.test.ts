import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { scanFile } from '../../../../agent/collectors/file-drop/formats.js';
import { create, FileDropCollector } from '../../../../agent/collectors/file-drop/file-drop.js';
import { fileDropSchema } from '../../../../agent/collectors/file-drop/schema.js';
import { Outbox, type OutboxOptions } from '../../../../agent/outbox/outbox.js';
import { makeTempDir } from '../../../helpers/tmp.js';
import { waitFor } from '../../../helpers/net.js';
import { testOutboxOptions } from '../../../helpers/outbox.js';
import { testHost } from '../../../helpers/host.js';
import Database from 'better-sqlite3';
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../../../common/logger.js';

const COLLECTOR_ID = 'file-drop:orders';
const STREAM = 'orders';

/** What the collector stores per file (its ledger), as far as these tests look at it. */
interface Ledger {
  state: 'claimed' | 'committed' | 'archived' | 'error';
  path: string;
  rows: number;
  movedTo?: string;
}

/** A record as read back from the outbox (its v1 wire JSON). */
interface Rec {
  seq: number;
  id: string;
  source: string;
  correlation_id: string | null;
  data: { file: string; line: number; fields: Record<string, unknown> };
}

let tmp: { dir: string; cleanup: () => void };
let base: string;
let drop: string;
let collectors: FileDropCollector[] = [];
let outboxes: Outbox[] = [];

beforeEach(() => {
  tmp = makeTempDir('file-drop-test-');
  base = tmp.dir;
  drop = path.join(base, 'drop');
  fs.mkdirSync(drop);
});

afterEach(async () => {
  for (const c of collectors) await c.stop();
  for (const o of outboxes) o.close();
  collectors = [];
  outboxes = [];
  tmp.cleanup();
});

function openOutbox(opts: Partial<OutboxOptions> = {}): Outbox {
  const o = new Outbox(testOutboxOptions(path.join(base, 'outbox.db'), { synchronous: 'NORMAL', ...opts }));
  outboxes.push(o);
  return o;
}

async function closeOutbox(o: Outbox): Promise<void> {
  o.close();
  outboxes = outboxes.filter((x) => x !== o);
}

async function startCollector(outbox: Outbox, cfg: Record<string, unknown> = {}): Promise<FileDropCollector> {
  const parsed = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', stable_time: '200ms', ...cfg });
  const c = create(parsed, testHost(outbox, parsed, base).ctx);
  expect(c).toBeInstanceOf(FileDropCollector);
  collectors.push(c as FileDropCollector);
  await c.start();
  return c as FileDropCollector;
}

async function stopCollector(c: FileDropCollector): Promise<void> {
  await c.stop();
  collectors = collectors.filter((x) => x !== c);
}

function records(outbox: Outbox): Rec[] {
  return outbox.readPending(STREAM, 0, 100_000).map((r) => JSON.parse(r.payload) as Rec);
}

function sha256(content: string | Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

function ledger(outbox: Outbox, content: string | Buffer): Ledger | undefined {
  return outbox.getCheckpoint<Ledger>(COLLECTOR_ID, sha256(content));
}

/** The local day folders the archive may use while this test runs (robust across midnight). */
function archiveDays(): Set<string> {
  const now = Date.now();
  const day = (t: number) => {
    const d = new Date(t);
    return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}-${String(d.getDate()).padStart(2, '0')}`;
  };
  return new Set([day(now - 60_000), day(now)]);
}

/** Every file under archive/<day>/, as "day/name". */
function archived(): string[] {
  const root = path.join(drop, 'archive');
  if (!fs.existsSync(root)) return [];
  return fs.readdirSync(root).flatMap((day) => fs.readdirSync(path.join(root, day)).map((f) => `${day}/${f}`));
}

function archivedPath(name: string): string | undefined {
  const hit = archived().find((p) => p.endsWith(`/${name}`));
  return hit ? path.join(drop, 'archive', hit) : undefined;
}

function errorFiles(): string[] {
  const dir = path.join(drop, 'error');
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

function csv(rows: number, from = 1): string {
  let s = 'id,sku,qty\n';
  for (let i = from; i < from + rows; i++) s += `${i},SKU-${i},${i * 10}\n`;
  return s;
}

/**
 * For a file written in several steps: waits until the complete content is archived or the collector has
 * visibly taken a partial one (a second ledger entry, or something in error/), so a failure shows what happened.
 */
async function waitWhole(outbox: Outbox, full: string): Promise<void> {
  await waitFor('complete file archived (or a partial read)', () => {
    return ledger(outbox, full)?.state === 'archived' || outbox.listCheckpoints(COLLECTOR_ID).length > 1 || errorFiles().length > 0;
  }, 15_000);
}

/** Waits until the file's ledger entry says archived. */
async function waitArchived(outbox: Outbox, content: string | Buffer, what = 'file archived'): Promise<Ledger> {
  return waitFor(what, () => {
    const l = ledger(outbox, content);
    return l?.state === 'archived' ? l : undefined;
  }, 15_000);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('file-drop collector', () => {
  it('ingests a CSV in order with fields and line numbers, archives it under today, ledger archived', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const content = 'id,sku,qty\n1,A-1,5\n2,B-2,7\n3,C-3,9\n';
    fs.writeFileSync(path.join(drop, 'orders-1.csv'), content);

    const entry = await waitArchived(outbox, content);
    await c.idle();

    const recs = records(outbox);
    const sha16 = sha256(content).slice(0, 16);
    expect(recs.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(recs.map((r) => r.id)).toEqual([`${sha16}:1`, `${sha16}:2`, `${sha16}:3`]);
    expect(recs.map((r) => r.data)).toEqual([
      { file: 'orders-1.csv', line: 2, fields: { id: '1', sku: 'A-1', qty: '5' } },
      { file: 'orders-1.csv', line: 3, fields: { id: '2', sku: 'B-2', qty: '7' } },
      { file: 'orders-1.csv', line: 4, fields: { id: '3', sku: 'C-3', qty: '9' } },
    ]);
    for (const r of recs) {
      expect(r.source).toBe(COLLECTOR_ID);
      expect(r.correlation_id).toBe(`file:${sha16}`);
    }

    expect(fs.existsSync(path.join(drop, 'orders-1.csv'))).toBe(false);
    const files = archived();
    expect(files).toHaveLength(1);
    const [day, name] = files[0]!.split('/');
    expect(archiveDays().has(day!)).toBe(true);
    expect(name).toBe('orders-1.csv');
    expect(fs.readFileSync(path.join(drop, 'archive', files[0]!), 'utf8')).toBe(content);
    expect(entry.rows).toBe(3);
    expect(entry.movedTo).toBe(path.join(drop, 'archive', files[0]!));
    expect(c.stats().counters).toMatchObject({ files_ingested: 1, records: 3, files_error: 0, files_duplicate: 0 });
  });

  it('picks up files already present before start', async () => {
    const a = csv(2);
    const b = csv(3, 100);
    fs.writeFileSync(path.join(drop, 'a.csv'), a);
    fs.writeFileSync(path.join(drop, 'b.csv'), b);
    const outbox = openOutbox();
    await startCollector(outbox);

    await waitArchived(outbox, a, 'a.csv archived');
    await waitArchived(outbox, b, 'b.csv archived');
    const recs = records(outbox);
    expect(recs).toHaveLength(5);
    expect(recs.filter((r) => r.data.file === 'a.csv').map((r) => r.data.fields.id)).toEqual(['1', '2']);
    expect(recs.filter((r) => r.data.file === 'b.csv').map((r) => r.data.fields.id)).toEqual(['100', '101', '102']);
    // Only the collector's own folders are left: `.processing/` (claimed files, now empty) and the archive.
    expect(fs.readdirSync(drop).sort()).toEqual(['.processing', 'archive']);
    expect(fs.readdirSync(path.join(drop, '.processing', 'orders'))).toEqual([]);
  });

  it('reads a file that is still being written when the collector starts only once it is complete', async () => {
    const file = path.join(drop, 'growing.csv');
    const full = csv(6);
    const lines = full.split(/(?<=\n)/);
    fs.writeFileSync(file, lines.slice(0, 2).join(''));
    const outbox = openOutbox();
    await startCollector(outbox, { stable_time: '600ms' });
    for (const l of lines.slice(2)) {
      await sleep(100); // well under stable_time
      fs.appendFileSync(file, l);
    }

    await waitWhole(outbox, full);
    expect(ledger(outbox, full)?.state).toBe('archived');
    const recs = records(outbox);
    expect(recs.map((r) => r.data.fields.id)).toEqual(['1', '2', '3', '4', '5', '6']);
    // Only the complete content was ever seen: one ledger entry, nothing in error/.
    expect(outbox.listCheckpoints(COLLECTOR_ID)).toHaveLength(1);
    expect(errorFiles()).toEqual([]);
  });

  it('ignores a .tmp file until it is renamed to .csv, then ingests it once', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const content = csv(4);
    const tmpFile = path.join(drop, 'orders.csv.tmp');
    fs.writeFileSync(tmpFile, content);
    // A marker dropped after the temp file: once it is handled, the temp file has had its chance.
    const marker = 'marker\nx\n';
    fs.writeFileSync(path.join(drop, 'marker.csv'), marker);
    await waitArchived(outbox, marker, 'marker archived');
    await c.idle();

    expect(fs.existsSync(tmpFile)).toBe(true);
    expect(ledger(outbox, content)).toBeUndefined();
    expect(records(outbox)).toHaveLength(1);

    fs.renameSync(tmpFile, path.join(drop, 'orders.csv'));
    await waitArchived(outbox, content);
    await c.idle();

    const recs = records(outbox).filter((r) => r.data.file === 'orders.csv');
    expect(recs.map((r) => r.data.fields.id)).toEqual(['1', '2', '3', '4']);
    expect(new Set(records(outbox).map((r) => r.id)).size).toBe(5);
    expect(archivedPath('orders.csv')).toBeDefined();
    expect(archivedPath('orders.csv.tmp')).toBeUndefined();
    expect(errorFiles()).toEqual([]);
  });

  it('reads a file written slowly in several appends only once it is complete', async () => {
    const outbox = openOutbox();
    await startCollector(outbox, { stable_time: '600ms' });
    const file = path.join(drop, 'slow.csv');
    const full = csv(8);
    const parts = full.split(/(?<=\n)/);
    fs.writeFileSync(file, parts[0]!);
    for (const p of parts.slice(1)) {
      await sleep(100); // pauses well under stable_time
      fs.appendFileSync(file, p);
    }

    await waitWhole(outbox, full);
    expect(ledger(outbox, full)?.state).toBe('archived');
    const recs = records(outbox);
    expect(recs.map((r) => r.data.fields.id)).toEqual(['1', '2', '3', '4', '5', '6', '7', '8']);
    expect(recs.map((r) => r.data.line)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
    expect(outbox.listCheckpoints(COLLECTOR_ID)).toHaveLength(1);
    expect(errorFiles()).toEqual([]);
  });

  it('moves a malformed CSV to error/ with a reason naming the line, ingests nothing, counts it', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { batch_size: 1 });
    const content = 'id,sku,qty\n1,A,5\n2,B,6\n3,C\n4,D,8\n';
    fs.writeFileSync(path.join(drop, 'bad.csv'), content);

    const entry = await waitFor('ledger error', () => (ledger(outbox, content)?.state === 'error' ? ledger(outbox, content) : undefined), 15_000);
    await c.idle();

    expect(errorFiles()).toEqual(['bad.csv', 'bad.csv.reason.txt']);
    expect(fs.readFileSync(path.join(drop, 'error', 'bad.csv'), 'utf8')).toBe(content);
    const reason = fs.readFileSync(path.join(drop, 'error', 'bad.csv.reason.txt'), 'utf8');
    expect(reason).toMatch(/reason: line 4: /);
    expect(reason).toContain('expected 3 fields');
    expect(reason).toContain(sha256(content));
    expect(entry.movedTo).toBe(path.join(drop, 'error', 'bad.csv'));
    expect(records(outbox)).toEqual([]);
    expect(outbox.streamStatus()).toEqual([]);
    expect(fs.existsSync(path.join(drop, 'bad.csv'))).toBe(false);
    expect(archived()).toEqual([]);
    expect(c.stats().counters).toMatchObject({ files_error: 1, files_ingested: 0, records: 0 });
    expect(String(c.stats().counters!.last_error)).toContain('line 4');
  });

  it('ingests the same content once: a copy under another name and under the same name go to error/ as duplicates', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const content = csv(3);
    fs.writeFileSync(path.join(drop, 'first.csv'), content);
    await waitArchived(outbox, content);
    await c.idle();

    fs.writeFileSync(path.join(drop, 'second.csv'), content);
    await waitFor('second.csv rejected', () => errorFiles().includes('second.csv.reason.txt'), 15_000);
    fs.writeFileSync(path.join(drop, 'first.csv'), content);
    await waitFor('first.csv rejected', () => errorFiles().includes('first.csv.reason.txt'), 15_000);
    await c.idle();

    expect(records(outbox)).toHaveLength(3);
    expect(errorFiles()).toEqual(['first.csv', 'first.csv.reason.txt', 'second.csv', 'second.csv.reason.txt']);
    for (const f of ['first.csv', 'second.csv']) {
      const reason = fs.readFileSync(path.join(drop, 'error', `${f}.reason.txt`), 'utf8');
      expect(reason).toContain('duplicate');
      expect(reason).toContain(path.join(drop, 'first.csv'));
    }
    expect(archived().map((p) => p.split('/')[1])).toEqual(['first.csv']);
    expect(ledger(outbox, content)?.state).toBe('archived');
    expect(c.stats().counters).toMatchObject({ files_ingested: 1, files_duplicate: 2, records: 3 });
  });

  it('archives a repeated empty export (header only) each time instead of calling it a duplicate', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const empty = 'id,sku,qty\n';
    fs.writeFileSync(path.join(drop, 'no-orders-1.csv'), empty);
    await waitFor('first empty file archived', () => archived().some((p) => p.endsWith('/no-orders-1.csv')), 15_000);
    fs.writeFileSync(path.join(drop, 'no-orders-2.csv'), empty);
    await waitFor('second empty file archived', () => archived().some((p) => p.endsWith('/no-orders-2.csv')), 15_000);
    await c.idle();
    expect(errorFiles()).toEqual([]);
    expect(records(outbox)).toEqual([]);
    expect(c.stats().counters).toMatchObject({ files_duplicate: 0, files_error: 0 });
  });

  it('remembers ingested content across a restart', async () => {
    const content = csv(3);
    let outbox = openOutbox();
    let c = await startCollector(outbox);
    fs.writeFileSync(path.join(drop, 'day1.csv'), content);
    await waitArchived(outbox, content);
    await stopCollector(c);
    await closeOutbox(outbox);

    outbox = openOutbox();
    c = await startCollector(outbox);
    fs.writeFileSync(path.join(drop, 'day1-again.csv'), content);
    await waitFor('duplicate rejected', () => errorFiles().includes('day1-again.csv.reason.txt'), 15_000);
    await c.idle();

    expect(fs.readFileSync(path.join(drop, 'error', 'day1-again.csv.reason.txt'), 'utf8')).toContain('duplicate');
    expect(records(outbox)).toHaveLength(3);
    expect(c.stats().counters).toMatchObject({ files_ingested: 0, files_duplicate: 1, records: 0 });
  });

  it('forgets a hash once dedupe_window has passed while it runs (not only at start-up): the same content is ingested again', async () => {
    const content = csv(3);
    const outbox = openOutbox();
    const c = await startCollector(outbox, { dedupe_window: '1s' });
    fs.writeFileSync(path.join(drop, 'week1.csv'), content);
    await waitArchived(outbox, content);
    // Within the window the same content is a duplicate...
    fs.writeFileSync(path.join(drop, 'week1-copy.csv'), content);
    await waitFor('duplicate rejected', () => errorFiles().includes('week1-copy.csv.reason.txt'), 15_000);
    // ...and once the window has passed (the running collector's housekeeping forgets it) it is new.
    await waitFor('hash forgotten', () => ledger(outbox, content) === undefined, 15_000);
    fs.writeFileSync(path.join(drop, 'week2.csv'), content);
    await waitArchived(outbox, content);
    await c.idle();
    expect(records(outbox)).toHaveLength(6);
    expect(c.stats().counters).toMatchObject({ files_ingested: 2, files_duplicate: 1 });
  });

  it('resumes a file claimed before a crash from its committed row count', async () => {
    const N = 10;
    const K = 4;
    const content = csv(N);
    const file = path.join(drop, 'crash.csv');
    fs.writeFileSync(file, content);
    const st = fs.statSync(file);
    const sha = sha256(content);
    const sha16 = sha.slice(0, 16);
    const outbox = openOutbox();
    // What the collector had committed when it died: the first K records and a claim with rows: K.
    outbox.append(
      STREAM,
      Array.from({ length: K }, (_, i) => ({
        id: `${sha16}:${i + 1}`,
        source: COLLECTOR_ID,
        correlation_id: `file:${sha16}`,
        data: { file: 'crash.csv', line: i + 2, fields: { id: String(i + 1), sku: `SKU-${i + 1}`, qty: String((i + 1) * 10) } },
      })),
      { collector: COLLECTOR_ID, key: sha, value: { state: 'claimed', path: file, size: st.size, mtimeMs: st.mtimeMs, rows: K, at: Date.now() } },
    );

    const c = await startCollector(outbox, { batch_size: 3 });
    const entry = await waitArchived(outbox, content);
    await c.idle();

    const recs = records(outbox);
    expect(recs).toHaveLength(N);
    expect(recs.map((r) => r.id)).toEqual(Array.from({ length: N }, (_, i) => `${sha16}:${i + 1}`));
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(recs.map((r) => r.data.line)).toEqual(Array.from({ length: N }, (_, i) => i + 2));
    expect(recs.map((r) => r.data.fields.id)).toEqual(Array.from({ length: N }, (_, i) => String(i + 1)));
    expect(entry.rows).toBe(N);
    expect(c.stats().counters).toMatchObject({ records: N - K, files_ingested: 1 });
    expect(archivedPath('crash.csv')).toBeDefined();
  });

  it('archives a committed-but-not-archived file without ingesting it again', async () => {
    const content = csv(3);
    // A crash after the last commit, before the move: the file is still where it was claimed.
    fs.mkdirSync(path.join(drop, '.processing', 'orders'), { recursive: true });
    const file = path.join(drop, '.processing', 'orders', 'done.csv');
    fs.writeFileSync(file, content);
    const st = fs.statSync(file);
    const sha = sha256(content);
    const sha16 = sha.slice(0, 16);
    const outbox = openOutbox();
    outbox.append(
      STREAM,
      [1, 2, 3].map((n) => ({ id: `${sha16}:${n}`, source: COLLECTOR_ID, correlation_id: `file:${sha16}`, data: { file: 'done.csv', line: n + 1, fields: {} } })),
      {
        collector: COLLECTOR_ID,
        key: sha,
        value: { state: 'committed', path: path.join(drop, 'done.csv'), processing: file, size: st.size, mtimeMs: st.mtimeMs, rows: 3, at: Date.now() },
      },
    );

    const c = await startCollector(outbox);
    const entry = await waitArchived(outbox, content);
    await c.idle();

    expect(records(outbox)).toHaveLength(3);
    expect(records(outbox).every((r) => JSON.stringify(r.data.fields) === '{}')).toBe(true);
    expect(entry.rows).toBe(3);
    const dest = archivedPath('done.csv');
    expect(dest).toBeDefined();
    expect(entry.movedTo).toBe(dest);
    expect(fs.existsSync(file)).toBe(false);
    expect(errorFiles()).toEqual([]);
    expect(c.stats().counters).toMatchObject({ records: 0, files_duplicate: 0 });
  });

  it('a new export under the same name while the previous one is being ingested is ingested too, not archived unread', async () => {
    // Back-pressure holds the first file mid-ingestion while the ERP replaces it (temp name, then rename).
    const outbox = openOutbox({ capPolicy: 'block', maxEvents: 10 });
    const c = await startCollector(outbox, { batch_size: 5 });
    const first = csv(20, 1);
    const second = csv(7, 500);
    fs.writeFileSync(path.join(drop, 'orders.csv'), first);
    await waitFor('first file paused at the cap', () => outbox.isFull() && records(outbox).length === 10, 15_000);
    fs.writeFileSync(path.join(drop, 'orders.csv.tmp'), second);
    fs.renameSync(path.join(drop, 'orders.csv.tmp'), path.join(drop, 'orders.csv'));
    // Play the relay: collect what is pending, ack it, until both files are in.
    const delivered: Rec[] = [];
    await waitFor(
      'both exports ingested',
      () => {
        const st = outbox.streamStatus().find((x) => x.stream === STREAM);
        if (st && st.lastSeq > st.ackedSeq) {
          delivered.push(...outbox.readPending(STREAM, st.ackedSeq, 100_000).map((r) => JSON.parse(r.payload) as Rec));
          outbox.ack(STREAM, st.lastSeq);
        }
        return ledger(outbox, first)?.state === 'archived' && ledger(outbox, second)?.state === 'archived';
      },
      20_000,
    );
    await c.idle();
    const ids = delivered.map((r) => Number(r.data.fields.id));
    expect(ids).toEqual([...Array.from({ length: 20 }, (_, i) => 1 + i), ...Array.from({ length: 7 }, (_, i) => 500 + i)]);
    expect(new Set(delivered.map((r) => r.data.file))).toEqual(new Set(['orders.csv']));
    expect(archived().map((p) => p.split('/')[1]).sort()).toEqual(['orders.csv', 'orders.csv.1']);
    expect(errorFiles()).toEqual([]);
  });

  it('retries a claimed file that failed mid-handling from .processing/, and ingests it once the fault clears', async () => {
    const outbox = openOutbox();
    // Fault injection from a second connection: writing the ledger fails until the trigger goes.
    const db = new Database(path.join(base, 'outbox.db'));
    db.exec("CREATE TRIGGER no_ledger BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END");
    const c = await startCollector(outbox);
    const content = csv(3);
    fs.writeFileSync(path.join(drop, 'stuck.csv'), content);
    await waitFor('the first attempt failed', () => Number(c.stats().counters!.io_errors) >= 1, 15_000);
    expect(fs.readdirSync(path.join(drop, '.processing', 'orders'))).toEqual(['stuck.csv']);
    db.exec('DROP TRIGGER no_ledger');
    db.close();
    await waitArchived(outbox, content, 'stuck.csv archived after the retry');
    await c.idle();
    expect(records(outbox).map((r) => r.data.fields.id)).toEqual(['1', '2', '3']);
    expect(archived().map((p) => p.split('/')[1])).toEqual(['stuck.csv']);
  });

  it('detects and decodes a Windows-1252 file (encoding auto)', async () => {
    const outbox = openOutbox();
    await startCollector(outbox);
    // 0xFC is ü and 0xF6 is ö in Windows-1252; neither is valid UTF-8 on its own.
    const content = Buffer.from('id,name,city\n1,M\xfcller,K\xf6ln\n', 'latin1');
    expect(content.includes(0xfc)).toBe(true);
    fs.writeFileSync(path.join(drop, 'customers.csv'), content);
    await waitArchived(outbox, content);
    expect(records(outbox).map((r) => r.data.fields)).toEqual([{ id: '1', name: 'Müller', city: 'Köln' }]);
  });

  it('decodes a Windows-1252 CSV with a configured delimiter', async () => {
    const outbox = openOutbox();
    await startCollector(outbox, { delimiter: ';', encoding: 'windows-1252' });
    const content = Buffer.from('id;name\n1;M\xfcller\n2;Stra\xdfe\n', 'latin1');
    fs.writeFileSync(path.join(drop, 'customers.csv'), content);
    await waitArchived(outbox, content);
    expect(records(outbox).map((r) => r.data.fields)).toEqual([
      { id: '1', name: 'Müller' },
      { id: '2', name: 'Straße' },
    ]);
  });

  it('ingests JSON Lines', async () => {
    const outbox = openOutbox();
    await startCollector(outbox, { format: 'jsonl', include: ['*.jsonl'] });
    const content = '{"sku":"A","qty":1}\n\n{"sku":"B","qty":2,"tags":["x"]}\n';
    fs.writeFileSync(path.join(drop, 'moves.jsonl'), content);
    fs.writeFileSync(path.join(drop, 'notes.txt'), 'not included\n');
    await waitArchived(outbox, content);
    expect(records(outbox).map((r) => r.data)).toEqual([
      { file: 'moves.jsonl', line: 1, fields: { sku: 'A', qty: 1 } },
      { file: 'moves.jsonl', line: 3, fields: { sku: 'B', qty: 2, tags: ['x'] } },
    ]);
    expect(fs.existsSync(path.join(drop, 'notes.txt'))).toBe(true);
    expect(ledger(outbox, 'not included\n')).toBeUndefined();
  });

  it('works in poll mode (network shares)', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { poll: true, poll_interval: '100ms' });
    const content = csv(3);
    fs.writeFileSync(path.join(drop, 'polled.csv'), content);
    await waitArchived(outbox, content);
    await c.idle();
    expect(records(outbox).map((r) => r.data.fields.id)).toEqual(['1', '2', '3']);
    expect(archivedPath('polled.csv')).toBeDefined();
  });

  it('in poll mode, reads a slowly written file only once complete even when polling is slower than stable_time', async () => {
    const outbox = openOutbox();
    await startCollector(outbox, { poll: true, poll_interval: '1s', stable_time: '300ms' });
    const file = path.join(drop, 'share.csv');
    const full = csv(25); // written over ~2.5 s: the folder poll (1 s) sees it while it still grows
    const parts = full.split(/(?<=\n)/);
    fs.writeFileSync(file, parts[0]!);
    for (const p of parts.slice(1)) {
      await sleep(100);
      fs.appendFileSync(file, p);
    }
    await waitWhole(outbox, full);
    expect(ledger(outbox, full)?.state).toBe('archived');
    expect(records(outbox).map((r) => r.data.fields.id)).toEqual(Array.from({ length: 25 }, (_, i) => String(i + 1)));
    expect(errorFiles()).toEqual([]);
    expect(outbox.listCheckpoints(COLLECTOR_ID)).toHaveLength(1);
  });

  it('pauses while a blocking outbox is full and resumes as rows are acked', async () => {
    const outbox = openOutbox({ capPolicy: 'block', maxEvents: 10 });
    const c = await startCollector(outbox, { batch_size: 5 });
    const content = csv(30);
    fs.writeFileSync(path.join(drop, 'big.csv'), content);

    await waitFor('outbox full', () => outbox.isFull(), 15_000);
    // The collector's writer is parked in waitForRoom, having appended up to the cap only.
    await waitFor('collector waiting for room', () => outbox.waitingAppends > 0, 15_000);
    expect(outbox.isFull()).toBe(true);
    expect(outbox.usage().events).toBe(10);
    expect(records(outbox)).toHaveLength(10);
    // In flight, the file's progress is its claim (keyed by its name in .processing/).
    expect(outbox.getCheckpoint(COLLECTOR_ID, 'claim:big.csv')).toMatchObject({ state: 'claimed', rows: 10 });
    expect(ledger(outbox, content)).toBeUndefined();

    const seen: Rec[] = [];
    let maxPending = 0;
    await waitFor(
      'all 30 records acked and file archived',
      () => {
        const pending = outbox.readPending(STREAM, outbox.ackedSeq(STREAM), 1000).map((r) => JSON.parse(r.payload) as Rec);
        maxPending = Math.max(maxPending, pending.length);
        if (pending.length > 0) {
          seen.push(...pending);
          outbox.ack(STREAM, pending[pending.length - 1]!.seq);
        }
        return seen.length === 30 && ledger(outbox, content)?.state === 'archived';
      },
      20_000,
      20,
    );
    await c.idle();

    expect(maxPending).toBeLessThanOrEqual(10);
    expect(seen.map((r) => r.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(seen.map((r) => r.data.fields.id)).toEqual(Array.from({ length: 30 }, (_, i) => String(i + 1)));
    expect(new Set(seen.map((r) => r.id)).size).toBe(30);
    expect(outbox.isFull()).toBe(false);
  });

  it('archives a second file of the same name (different content) as name.1', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const one = csv(2);
    const two = csv(2, 50);
    fs.writeFileSync(path.join(drop, 'daily.csv'), one);
    await waitArchived(outbox, one);
    await c.idle();
    fs.writeFileSync(path.join(drop, 'daily.csv'), two);
    const entry = await waitArchived(outbox, two);
    await c.idle();

    const first = archivedPath('daily.csv');
    const second = archivedPath('daily.csv.1');
    expect(first).toBeDefined();
    expect(second).toBeDefined();
    expect(fs.readFileSync(first!, 'utf8')).toBe(one);
    expect(fs.readFileSync(second!, 'utf8')).toBe(two);
    expect(entry.movedTo).toBe(second);
    expect(records(outbox).map((r) => r.data.fields.id)).toEqual(['1', '2', '50', '51']);
    expect(errorFiles()).toEqual([]);
  });
});

/** A pino logger whose lines the test can read. */
function captureLog(): { lines: Record<string, unknown>[]; logger: Logger } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'debug', destination }) };
}

/** Every record of the stream, whole: ids and rows as they must arrive for `rows` rows of csv(). */
function expectWholeRows(outbox: Outbox, rows: number): void {
  const recs = records(outbox);
  expect(recs.map((r) => r.data.fields.id)).toEqual(Array.from({ length: rows }, (_, i) => String(i + 1)));
  expect(recs.map((r) => r.data.fields.qty)).toEqual(Array.from({ length: rows }, (_, i) => String((i + 1) * 10)));
  expect(new Set(recs.map((r) => r.id)).size).toBe(rows);
}

/**
 * An ERP job writing an export in place: it holds the file open from the start, writes `head`, pauses
 * (a long query), then writes `tail` and closes. Resolves when closed.
 */
async function writeInPlace(file: string, head: string, pauseMs: number, tail: string): Promise<void> {
  const fd = fs.openSync(file, 'w');
  try {
    if (head) fs.writeSync(fd, head);
    await sleep(pauseMs); // the pause is the scenario, not a synchronisation
    fs.writeSync(fd, tail);
  } finally {
    fs.closeSync(fd);
  }
}

describe('file-drop collector: a writer that pauses longer than stable_time (#7)', () => {
  const full = csv(2000);
  // Rows 1..1000 and half of row 1001: the cut lands inside `1001,SKU-1001,10010`.
  const cut = full.indexOf('1001,SKU-1001') + 7;

  for (const writer_check of [true, false]) {
    const guard = writer_check ? 'open-writer check (Linux /proc)' : 'no open-writer check: held-back last line and empty_stable_time';

    it(`pause mid-row: every row arrives once and whole (${guard})`, async () => {
      const outbox = openOutbox();
      const c = await startCollector(outbox, { stable_time: '1s', writer_check });
      await writeInPlace(path.join(drop, 'export.csv'), full.slice(0, cut), 3_000, full.slice(cut));
      await waitArchived(outbox, full);
      await c.idle();
      expectWholeRows(outbox, 2000);
      expect(errorFiles()).toEqual([]);
      expect(outbox.listCheckpoints(COLLECTOR_ID)).toHaveLength(1);
    });

    it(`pause after the header: a header-only file is not taken as an empty export (${guard})`, async () => {
      const outbox = openOutbox();
      const c = await startCollector(outbox, { stable_time: '1s', writer_check });
      const header = full.indexOf('\n') + 1;
      await writeInPlace(path.join(drop, 'export.csv'), full.slice(0, header), 3_000, full.slice(header));
      await waitArchived(outbox, full);
      await c.idle();
      expectWholeRows(outbox, 2000);
      expect(archived()).toHaveLength(1);
    });

    it(`pause before the first byte: the 0-byte file is not taken as an empty export (${guard})`, async () => {
      const outbox = openOutbox();
      const c = await startCollector(outbox, { stable_time: '1s', writer_check });
      await writeInPlace(path.join(drop, 'export.csv'), '', 3_000, full);
      await waitArchived(outbox, full);
      await c.idle();
      expectWholeRows(outbox, 2000);
      expect(archived()).toHaveLength(1);
    });
  }

  it('on a polled share, where /proc cannot see the writer, a half-written last row still waits', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { stable_time: '1s', poll: true, poll_interval: '200ms' });
    await writeInPlace(path.join(drop, 'export.csv'), full.slice(0, full.indexOf('1001,SKU-1001,') + 15), 3_000, full.slice(full.indexOf('1001,SKU-1001,') + 15));
    await waitArchived(outbox, full);
    await c.idle();
    expectWholeRows(outbox, 2000);
  });

  it('a file stopped halfway resumes after a restart from its claim, without a row twice', async () => {
    const outbox = openOutbox({ capPolicy: 'block', maxEvents: 10 });
    const parsed = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', stable_time: '200ms', batch_size: 5 });
    const host = testHost(outbox, parsed, base);
    const c1 = create(parsed, host.ctx);
    await c1.start();
    const content = csv(30);
    fs.writeFileSync(path.join(drop, 'half.csv'), content);
    await waitFor('paused at the cap with a claim', () => outbox.getCheckpoint<{ rows: number }>(COLLECTOR_ID, 'claim:half.csv')?.rows === 10, 15_000);
    host.abort.abort(); // as the supervisor stops an instance: its wait for room ends
    await c1.stop();
    const c2 = await startCollector(outbox, { batch_size: 5 });
    const delivered: Rec[] = [];
    await waitFor(
      'all rows delivered',
      () => {
        const pending = outbox.readPending(STREAM, outbox.ackedSeq(STREAM), 1000).map((r) => JSON.parse(r.payload) as Rec);
        if (pending.length > 0) {
          delivered.push(...pending);
          outbox.ack(STREAM, pending[pending.length - 1]!.seq);
        }
        return ledger(outbox, content)?.state === 'archived';
      },
      20_000,
      20,
    );
    await c2.idle();
    delivered.push(...outbox.readPending(STREAM, outbox.ackedSeq(STREAM), 1000).map((r) => JSON.parse(r.payload) as Rec));
    expect(delivered.map((r) => r.data.fields.id)).toEqual(Array.from({ length: 30 }, (_, i) => String(i + 1)));
  });

  it('a claim left behind under a name (its file gone) is not taken for the next file claimed there, even on the same inode', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox);
    const content = csv(5);
    const staging = path.join(base, 'a.csv');
    fs.writeFileSync(staging, content);
    const { ino } = fs.statSync(staging);
    // What a file that vanished from .processing/ while the agent ran leaves, with the inode the next file gets.
    outbox.setCheckpoint([
      {
        collector: COLLECTOR_ID,
        key: 'claim:a.csv',
        value: { state: 'claimed', path: path.join(drop, 'a.csv'), processing: path.join(drop, '.processing', 'orders', 'a.csv'), ino, seq: 1, rows: 3, prefix: 'stale', sha256: 'x', size: 1, mtimeMs: 0, at: 0 },
      },
    ]);
    fs.renameSync(staging, path.join(drop, 'a.csv')); // same file system: the inode moves with it
    await waitArchived(outbox, content);
    await c.idle();
    expect(records(outbox).map((r) => r.id)).toEqual([1, 2, 3, 4, 5].map((n) => `${sha256(content).slice(0, 16)}:${n}`));
    expect(outbox.getCheckpoint(COLLECTOR_ID, 'claim:a.csv')).toBeUndefined();
  });

  it('takes an empty file as an empty export once it stayed empty for empty_stable_time', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { stable_time: '100ms', empty_stable_time: '600ms' });
    fs.writeFileSync(path.join(drop, 'nothing.csv'), '');
    await waitArchived(outbox, '');
    await c.idle();
    expect(records(outbox)).toEqual([]);
    expect(archivedPath('nothing.csv')).toBeDefined();
  });

  it('a file that grew after it was read is read on from its committed rows (last line held back meanwhile)', async () => {
    // No open-writer check and a writer that closes between appends: only the held-back unterminated
    // line and the re-check before archiving stand between it and a half row.
    const outbox = openOutbox();
    const c = await startCollector(outbox, { stable_time: '300ms', writer_check: false, empty_stable_time: '5s', batch_size: 100 });
    const file = path.join(drop, 'appended.csv');
    // Cut inside the last field: `1001,SKU-1001,1` parses (as qty 1), so rows 1..1000 go in while row 1001 waits.
    const cutInField = full.indexOf('1001,SKU-1001,') + '1001,SKU-1001,1'.length;
    fs.writeFileSync(file, full.slice(0, cutInField));
    await waitFor('rows before the cut committed', () => outbox.getCheckpoint<{ rows: number }>(COLLECTOR_ID, 'claim:appended.csv')?.rows === 1000, 15_000);
    expect(records(outbox)).toHaveLength(1000);
    fs.appendFileSync(path.join(drop, '.processing', 'orders', 'appended.csv'), full.slice(cutInField));
    await waitArchived(outbox, full);
    await c.idle();
    expectWholeRows(outbox, 2000);
  });
});

describe('file-drop collector: names (#7)', () => {
  it('takes ORDERS.CSV with include *.csv; logs an unmatched file and a subfolder once each', async () => {
    const outbox = openOutbox();
    const log = captureLog();
    const parsed = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', stable_time: '200ms', include: ['*.csv'] });
    const c = create(parsed, testHost(outbox, parsed, base, { logger: log.logger }).ctx) as FileDropCollector;
    collectors.push(c);
    await c.start();
    const content = csv(2);
    fs.writeFileSync(path.join(drop, 'ORDERS.CSV'), content);
    fs.writeFileSync(path.join(drop, 'readme.txt'), 'not an export');
    fs.writeFileSync(path.join(drop, 'upload.csv.part'), 'a transfer in progress');
    fs.mkdirSync(path.join(drop, 'old'));
    await waitArchived(outbox, content);
    await c.idle();
    await waitFor('the subfolder noted', () => log.lines.some((l) => l.dir === path.join(drop, 'old')), 5_000);
    fs.appendFileSync(path.join(drop, 'readme.txt'), ' (changed)');
    expect(archivedPath('ORDERS.CSV')).toBeDefined();
    const unmatched = log.lines.filter((l) => String(l.msg).includes('does not match'));
    expect(unmatched).toHaveLength(1);
    expect(unmatched[0]).toMatchObject({ file: 'readme.txt', include: ['*.csv'], level: 30 });
    expect(fs.existsSync(path.join(drop, 'readme.txt'))).toBe(true);
    expect(fs.existsSync(path.join(drop, 'upload.csv.part'))).toBe(true);
  });

  it('case_sensitive: true leaves ORDERS.CSV alone', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { include: ['*.csv'], case_sensitive: true });
    fs.writeFileSync(path.join(drop, 'ORDERS.CSV'), csv(1));
    const marker = csv(1, 7);
    fs.writeFileSync(path.join(drop, 'marker.csv'), marker);
    await waitArchived(outbox, marker);
    await c.idle();
    expect(fs.existsSync(path.join(drop, 'ORDERS.CSV'))).toBe(true);
    expect(records(outbox)).toHaveLength(1);
  });
});

describe('file-drop collector: dialects and encodings (#7)', () => {
  it('ingests an Excel "Unicode text" export (UTF-16LE with BOM, tabs, CRLF) with its characters and inch marks intact', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { format: 'tsv', include: ['*.txt'] });
    const text = 'sku\tname\tcity\r\nP-12\tPipe 12" steel\tŁódź\r\nQ-1\t"quoted"\t東京 €\r\n';
    const bytes = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, 'utf16le')]);
    fs.writeFileSync(path.join(drop, 'Export.TXT'), bytes);
    await waitArchived(outbox, bytes);
    await c.idle();
    expect(records(outbox).map((r) => r.data.fields)).toEqual([
      { sku: 'P-12', name: 'Pipe 12" steel', city: 'Łódź' },
      { sku: 'Q-1', name: '"quoted"', city: '東京 €' },
    ]);
    expect(errorFiles()).toEqual([]);
  });

  it('takes a CSV with an inch mark in an unquoted value with relax_quotes: true', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { relax_quotes: true });
    const content = 'sku,size\nP-1,12" pipe\n';
    fs.writeFileSync(path.join(drop, 'pipes.csv'), content);
    await waitArchived(outbox, content);
    await c.idle();
    expect(records(outbox).map((r) => r.data.fields)).toEqual([{ sku: 'P-1', size: '12" pipe' }]);
  });
});

describe('file-drop collector: drop order (#7)', () => {
  /** Writes each file under a temp name, then renames them all in, back to back (well within 1 ms). */
  function dropAll(names: string[], contents: string[]): void {
    names.forEach((n, i) => fs.writeFileSync(path.join(drop, `${n}.tmp`), contents[i]!));
    for (const n of names) fs.renameSync(path.join(drop, `${n}.tmp`), path.join(drop, n));
  }

  /** Four names whose alphabetical order is the reverse of their drop order, so name order cannot pass for drop order. */
  const batchOf = (round: number) => ['d', 'c', 'b', 'a'].map((x) => `export-${String(round).padStart(2, '0')}-${x}.csv`);
  const filesInOrder = (outbox: Outbox) => [...new Set(records(outbox).map((r) => r.data.file))];

  it('four files renamed in within a millisecond, 20 times over: ingested in drop order every time', async () => {
    const outbox = openOutbox();
    const c = await startCollector(outbox, { stable_time: '100ms' });
    const expected: string[] = [];
    for (let round = 0; round < 20; round++) {
      const names = batchOf(round);
      dropAll(names, names.map((_, i) => csv(3, (round * 4 + i) * 10 + 1)));
      expected.push(...names);
      await waitFor(`round ${round} ingested`, () => archived().length === expected.length, 15_000);
    }
    await c.idle();
    expect(filesInOrder(outbox)).toEqual(expected);
    expect(c.stats().counters).toMatchObject({ out_of_order: 0, files_ingested: 80 });
  });

  it('keeps drop order across a restart for files that were waiting when it stopped', async () => {
    const outbox = openOutbox();
    const c1 = await startCollector(outbox, { stable_time: '100ms' });
    // The first file is still being written in place (held open): the three dropped after it wait for it.
    const names = batchOf(0);
    const first = fs.openSync(path.join(drop, names[0]!), 'w');
    fs.writeSync(first, csv(2, 1));
    await waitFor('the first file seen', () => outbox.getCheckpoint(COLLECTOR_ID, `seen:${names[0]}`), 10_000);
    dropAll(names.slice(1), [csv(2, 11), csv(2, 21), csv(2, 31)]);
    await waitFor('all four seen', () => outbox.listCheckpoints(COLLECTOR_ID).filter((e) => e.key.startsWith('seen:')).length === 4, 10_000);
    await stopCollector(c1);
    fs.closeSync(first);
    const c2 = await startCollector(outbox, { stable_time: '100ms' });
    await waitFor('all four archived', () => archived().length === 4, 15_000);
    await c2.idle();
    expect(filesInOrder(outbox)).toEqual(names);
    expect(outbox.listCheckpoints(COLLECTOR_ID).filter((e) => !/^[0-9a-f]{64}$/.test(e.key))).toEqual([]);
  });

  it('keeps drop order across a restart: claimed files first, then those waiting; 50 waiting files raise no warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const outbox = openOutbox();
      // Before the restart: two files claimed (moved into .processing/, as a crash right after the move leaves them).
      const c1 = await startCollector(outbox, { stable_time: '100ms', batch_size: 2 });
      await stopCollector(c1);
      const proc = path.join(drop, '.processing', 'orders');
      fs.mkdirSync(proc, { recursive: true });
      const names = Array.from({ length: 52 }, (_, i) => `delta-${String(i + 1).padStart(5, '0')}.csv`);
      const contents = names.map((_, i) => csv(2, i * 10 + 1));
      fs.writeFileSync(path.join(proc, names[0]!), contents[0]!);
      fs.writeFileSync(path.join(proc, names[1]!), contents[1]!);
      dropAll(names.slice(2), contents.slice(2));
      const c2 = await startCollector(outbox, { stable_time: '100ms' });
      await waitFor('all 52 files archived', () => archived().length === 52, 30_000);
      await c2.idle();
      expect(filesInOrder(outbox)).toEqual(names);
      expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('a stable file waits for an earlier one still being written, and overtakes it after order_timeout (logged)', async () => {
    const outbox = openOutbox();
    const log = captureLog();
    const parsed = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', stable_time: '200ms', order_timeout: '1500ms' });
    const c = create(parsed, testHost(outbox, parsed, base, { logger: log.logger }).ctx) as FileDropCollector;
    collectors.push(c);
    await c.start();
    const slow = path.join(drop, 'a-first.csv');
    const fd = fs.openSync(slow, 'w'); // held open: never stable while the writer has it
    fs.writeSync(fd, 'id,sku,qty\n1,A,1\n');
    const second = csv(1, 2);
    fs.writeFileSync(path.join(drop, 'b-second.csv'), second);
    await waitFor('the second file noted as waiting', () => log.lines.some((l) => String(l.msg).includes('waiting for an earlier file')), 10_000);
    expect(records(outbox)).toEqual([]);
    await waitArchived(outbox, second, 'the second file taken after order_timeout');
    expect(log.lines.find((l) => String(l.msg).includes('ahead of an earlier one'))).toMatchObject({ file: 'b-second.csv', earlier: 'a-first.csv' });
    fs.closeSync(fd);
    await waitArchived(outbox, 'id,sku,qty\n1,A,1\n', 'the first file once closed');
    await c.idle();
    expect(filesInOrder(outbox)).toEqual(['b-second.csv', 'a-first.csv']);
    expect(c.stats().counters).toMatchObject({ out_of_order: 1 });
  });
});

describe('file-drop: fuzzed files (#12 item 6)', () => {
  it('30 random and damaged CSV files: each is archived with its rows or moved to error/ with a reason, exactly as the reader judges it; the outbox holds the archived rows, nothing else', async () => {
    const valid = Buffer.from('id,sku,qty,note\n1,A-1,2,"plain"\n2,B-7,1,"with, comma"\n3,C-9,5,"two\nlines"\n');
    const damage = fc.tuple(fc.constantFrom('delete', 'insert', 'truncate'), fc.nat(), fc.array(fc.constantFrom(0x22, 0x2c, 0x0a, 0x0d, 0x00, 0xff, 0xc3), { minLength: 1, maxLength: 3 }));
    const contentArb = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.array(damage, { minLength: 1, maxLength: 3 }).map((ds) =>
        ds.reduce<Buffer>((b, [kind, pos, bytes]) => {
          const at = pos % (b.length + 1);
          if (kind === 'delete') return Buffer.concat([b.subarray(0, at), b.subarray(at + bytes.length)]);
          if (kind === 'insert') return Buffer.concat([b.subarray(0, at), Buffer.from(bytes), b.subarray(at)]);
          return b.subarray(0, Math.max(1, at));
        }, valid),
      ),
    );
    // Distinct contents (the ledger knows a file by its hash), none empty (an empty file waits empty_stable_time).
    const files = new Map<string, Buffer>();
    for (const b of fc.sample(contentArb, { numRuns: 60, seed: 12_066 })) if (b.length > 0 && files.size < 30) files.set(sha256(b), b);
    // What the reader says of each, on a copy outside the drop folder.
    const judged = new Map<string, number | 'malformed'>();
    fs.mkdirSync(path.join(base, 'copies'));
    let i = 0;
    for (const [hash, b] of files) {
      const copy = path.join(base, 'copies', `f${i++}.csv`);
      fs.writeFileSync(copy, b);
      judged.set(hash, await scanFile(copy, { format: 'csv', encoding: 'auto' }).then((s) => s.rows, () => 'malformed' as const));
    }
    expect([...judged.values()].filter((v) => v === 'malformed').length).toBeGreaterThan(0);
    expect([...judged.values()].filter((v) => v !== 'malformed').length).toBeGreaterThan(0);

    const outbox = openOutbox();
    i = 0;
    for (const b of files.values()) fs.writeFileSync(path.join(drop, `f${i++}.csv`), b);
    const c = await startCollector(outbox, { stable_time: '100ms' });
    await waitFor('every file archived or in error/', () => [...files.values()].every((b) => ['archived', 'error'].includes(ledger(outbox, b)?.state ?? '')), 30_000);
    await c.idle();

    let rows = 0;
    for (const [hash, b] of files) {
      const l = ledger(outbox, b)!;
      const want = judged.get(hash)!;
      expect(l.state, `${path.basename(l.path)}: reader says ${String(want)}`).toBe(want === 'malformed' ? 'error' : 'archived');
      if (want === 'malformed') expect(fs.existsSync(`${l.movedTo!}.reason.txt`)).toBe(true);
      else rows += want;
    }
    expect(records(outbox)).toHaveLength(rows);
    expect(errorFiles().filter((f) => f.endsWith('.reason.txt'))).toHaveLength([...judged.values()].filter((v) => v === 'malformed').length);
  });
});

