/**
 * Damaged outbox rows (#12 item 4): written by the test with raw SQL on the file, as a bad disk
 * sector, a crashed editor or a half-restored backup would leave them. `verify` finds them,
 * `repair` quarantines them into the dead-letter table with the reason, and the forwarder's read
 * path does the same instead of throwing on every batch. Plus `resend` of retained records.
 */
import { describe, expect, it } from 'vitest';
import { Outbox, type NewRecord } from '../../../agent/outbox/outbox.js';
import { verifyOutbox } from '../../../agent/outbox/verify.js';
import { planBatch } from '../../../agent/transport/batch.js';
import { wireRecordV2 } from '../../../common/wire-v2.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';
import { fileUsage, withFile } from '../../helpers/outbox-file.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const files = useOutboxFiles('repair-test-', { synchronous: 'NORMAL', replayWindowMs: HOUR });

function recs(stream: string, from: number, to: number): NewRecord[] {
  return Array.from({ length: to - from + 1 }, (_, k) => ({ id: `${stream}-${from + k}`, source: `test:${stream}`, ts: T0 + from + k, data: { i: from + k } }));
}

/** Runs SQL on the outbox file with the test's own connection (the outbox closed or not). */
function sql(statement: string, ...params: unknown[]): void {
  withFile(files.dbPath(), (db) => db.prepare(statement).run(...params), { readonly: false });
}

/** Replaces one line of the chunk holding `seq` of stream s. */
function damageLine(seq: number, replace: (line: string) => string): void {
  withFile(
    files.dbPath(),
    (db) => {
      const c = db.prepare("SELECT gid, first_seq, payload FROM chunks WHERE stream = 's' AND first_seq <= ? AND last_seq >= ?").get(seq, seq) as { gid: number; first_seq: number; payload: string };
      const lines = c.payload.split('\n');
      lines[seq - c.first_seq] = replace(lines[seq - c.first_seq]!);
      db.prepare('UPDATE chunks SET payload = ? WHERE gid = ?').run(lines.join('\n'), c.gid);
    },
    { readonly: false },
  );
}

/** s: 1..5 (acked), 6..10, 11..15, 16..20; checkpoints of collector c. */
function fixture(): void {
  const o = files.open();
  o.append('s', recs('s', 1, 5), { collector: 'c', key: 'pos', value: 5 });
  o.append('s', recs('s', 6, 10));
  o.append('s', recs('s', 11, 15));
  o.append('s', recs('s', 16, 20), { collector: 'c', key: 'pos', value: 20 });
  o.ack('s', 5);
  o.close();
  files.untrack(o);
}

function damageAll(): void {
  // 7: not JSON. 12: JSON, but no id (the wire schema refuses it). 16..20: a line lost (4 lines for 5 seqs).
  damageLine(7, (l) => l.slice(0, -5));
  damageLine(12, (l) => l.replace(/"id":"s-12",/, ''));
  withFile(files.dbPath(), (db) => db.prepare("UPDATE chunks SET payload = substr(payload, 1, instr(payload, char(10)) - 1) || substr(payload, instr(payload, char(10)) + instr(substr(payload, instr(payload, char(10)) + 1), char(10))) WHERE stream = 's' AND first_seq = 16").run(), { readonly: false });
  sql("INSERT INTO checkpoints (collector, key, value, updated_at) VALUES ('c', 'broken', '{not json', 0)");
}

describe('outbox verify', () => {
  it('a clean outbox (appends, acks, a dead-lettered range, checkpoints) verifies ok; a checkpoint of a collector the config lacks is a warning', () => {
    fixture();
    const o = files.open();
    o.deadLetterPending('s', [{ from: 8, to: 9, reason: 'refused' }]);
    o.close();
    files.untrack(o);
    const r = verifyOutbox(files.dbPath(), { collectors: ['other'] });
    expect(r.checks.flatMap((c) => c.problems)).toEqual([]);
    expect(r.ok).toBe(true);
    expect(r.checks.find((c) => c.name === 'checkpoints')!.warnings[0]).toMatch(/collector "c", which the config does not have/);
    expect(verifyOutbox(files.dbPath(), { collectors: ['c'] }).checks.flatMap((c) => c.warnings)).toEqual([]);
  });

  it('names each damage: an unreadable record, one the wire schema refuses, a chunk missing a line, a checkpoint that is not JSON, a deleted chunk', () => {
    fixture();
    damageAll();
    sql("DELETE FROM chunks WHERE stream = 's' AND first_seq = 11");
    const r = verifyOutbox(files.dbPath(), { collectors: ['c'] });
    expect(r.ok).toBe(false);
    const problems = r.checks.flatMap((c) => c.problems).join('\n');
    expect(problems).toMatch(/s seq 7: record is not valid JSON/);
    expect(problems).toMatch(/chunk 16\.\.20: chunk 16\.\.20 holds 4 line\(s\) for 5 seq\(s\)/);
    expect(problems).toMatch(/pending seqs 11\.\.15 are neither stored nor skipped/);
    expect(problems).toMatch(/c \/ broken: value is not JSON/);
    expect(r.checks.find((c) => c.name === 'sqlite integrity')!.problems).toEqual([]);
  });
});

describe('outbox repair', () => {
  it('quarantines every damaged row into the dead-letter table with its reason; the rest reads as before and the relay is told the seqs are skipped; verify is clean after', () => {
    fixture();
    damageAll();
    const o = files.open();
    const report = o.repair();
    expect(report.quarantined).toEqual([
      { stream: 's', from: 7, to: 7, reason: expect.stringMatching(/not valid JSON/) },
      { stream: 's', from: 12, to: 12, reason: expect.stringMatching(/wire schema: id/) },
      { stream: 's', from: 16, to: 20, reason: expect.stringMatching(/holds 4 line\(s\) for 5 seq\(s\)/) },
    ]);
    expect(report.checkpointsRemoved).toEqual([{ collector: 'c', key: 'broken' }]);
    expect(o.getCheckpoint('c', 'pos')).toBe(20);
    const dead = o.deadLetters.list();
    expect(dead.map((d) => [d.seq, d.origin])).toEqual([
      [7, 'repair'],
      [12, 'repair'],
      [16, 'repair'],
    ]);
    expect(dead[2]!.reason).toMatch(/seqs 16\.\.20/);
    // Every other pending record, intact and valid; the holes are declared as dead_letter skips.
    const rows = o.readPending('s', 5, 100);
    expect(rows.map((r) => r.seq)).toEqual([6, 8, 9, 10, 11, 13, 14, 15]);
    for (const r of rows) expect(wireRecordV2.parse(JSON.parse(r.payload)).id).toBe(`s-${r.seq}`);
    const plan = planBatch(o, 's', 5, { maxRecords: 100, maxBytes: 1e9 }, 2, false)!;
    expect(plan.skipped).toEqual([
      { from: 7, to: 7, reason: 'dead_letter' },
      { from: 12, to: 12, reason: 'dead_letter' },
      { from: 16, to: 20, reason: 'dead_letter' },
    ]);
    expect(plan.last).toBe(20);
    const u = o.usage();
    expect({ bytes: u.bytes, events: u.events, dropped: u.dropped }).toEqual(fileUsage(files.dbPath()));
    // Repairing again finds nothing.
    expect(o.repair()).toEqual({ quarantined: [], checkpointsRemoved: [], streamsFixed: [] });
    o.close();
    files.untrack(o);
    const v = verifyOutbox(files.dbPath(), { collectors: ['c'] });
    expect(v.checks.flatMap((c) => c.problems)).toEqual([]);
  });

  it('the forwarder read path never throws on a damaged row: it quarantines it and reads on (no loop on one bad row)', () => {
    fixture();
    damageLine(7, (l) => l.slice(0, -5));
    damageLine(3, () => 'garbage'); // acked and retained: read only by a resend
    const o = files.open();
    const rows = o.readPending('s', 5, 100);
    expect(rows.map((r) => r.seq)).toEqual([6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect(o.deadLetters.list().map((d) => [d.seq, d.origin])).toEqual([[7, 'repair']]);
    expect(o.skipsBetween('s', 1, 20)).toEqual([{ first: 7, last: 7, reason: 'dead_letter' }]);
    // The same read again: nothing more moves.
    expect(o.readPending('s', 5, 100)).toHaveLength(14);
    expect(o.deadLetters.list()).toHaveLength(1);
    // An acked row that is damaged goes too, without a skip (the relay holds that seq already).
    expect(o.readPending('s', 0, 3).map((r) => r.seq)).toEqual([1, 2, 4]);
    expect(o.deadLetters.list().map((d) => d.seq)).toEqual([7, 3]);
    expect(o.skipsBetween('s', 1, 20)).toEqual([{ first: 7, last: 7, reason: 'dead_letter' }]);
    // Pruning past a damaged acked row works too.
    expect(() => o.pruneAcked(true)).not.toThrow();
  });

  it('a stream whose next seq fell below its stored rows is raised above them', () => {
    fixture();
    sql("UPDATE streams SET next_seq = 12 WHERE stream = 's'");
    const o = files.open();
    expect(o.repair().streamsFixed).toEqual([{ stream: 's', nextSeq: 21, was: 12 }]);
    expect(o.append('s', recs('s', 21, 21)).firstSeq).toBe(21);
  });
});

describe('outbox resend', () => {
  it('appends the retained acked records from a seq again as new records (same ids, same data), page by page with progress; pruned ones are named', () => {
    const o: Outbox = files.open();
    o.append('s', recs('s', 1, 30));
    o.ack('s', 25);
    const seen: number[] = [];
    const r = o.resendRetained('s', 10, (p) => seen.push(p.resent), 7);
    expect(r).toMatchObject({ stream: 's', from: 10, upto: 25, total: 16, resent: 16, notRetained: null });
    expect(seen).toEqual([7, 14, 16]);
    const copies = o.readPending('s', 30, 100);
    expect(copies.map((c) => c.seq)).toEqual(Array.from({ length: 16 }, (_, i) => 31 + i));
    expect(copies.map((c) => JSON.parse(c.payload).id)).toEqual(Array.from({ length: 16 }, (_, i) => `s-${10 + i}`));
    expect(copies.map((c) => JSON.parse(c.payload).data.i)).toEqual(Array.from({ length: 16 }, (_, i) => 10 + i));
    // After pruning, what is gone is named, not silently skipped.
    o.pruneAcked(true);
    const again = o.resendRetained('s', 3);
    expect(again.notRetained).toEqual({ from: 3, to: 25 });
    expect(again.resent).toBe(0);
  });
});
