import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { IdIndex } from '../../../cloud-relay/store/id-index.js';
import { migrate } from '../../../cloud-relay/store/migrations.js';
import { isNumbered, numberedId, runsOf } from '../../../cloud-relay/store/id-ranges.js';

const WINDOW = 1_000;

/**
 * What the index must answer: each id new unless remembered in the current or the previous
 * generation; an id seen again is carried into the current one (the window slides with each
 * sighting); two windows without a rotation forget both.
 */
class Model {
  current = new Set<string>();
  previous = new Set<string>();
  startedAt: number;
  constructor(now: number) {
    this.startedAt = now;
  }
  rotateIfDue(now: number): void {
    if (now - this.startedAt < WINDOW) return;
    this.previous = now - this.startedAt >= 2 * WINDOW ? new Set() : this.current;
    this.current = new Set();
    this.startedAt = now;
  }
  remember(key: number, id: string): boolean {
    const k = `${key}\u0000${id}`;
    const seen = this.previous.has(k) || this.current.has(k);
    this.current.add(k);
    return !seen;
  }
}

/** A seeded PRNG so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1_664_525 + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

function openIndex(now: number): { db: Database.Database; index: IdIndex } {
  const db = new Database(':memory:');
  migrate(db);
  const index = new IdIndex(db, WINDOW);
  index.open(now);
  return { db, index };
}

/** One list through the index (rotating first, in a transaction) and through the model: the answers must agree. */
function expectAsModel(db: Database.Database, index: IdIndex, model: Model, now: number, key: number, ids: readonly string[], round: number): void {
  const got = db.transaction(() => {
    index.rotateIfDue(now);
    return index.rememberAll(key, ids);
  })();
  model.rotateIfDue(now);
  expect({ round, got }).toEqual({ round, got: ids.map((id) => model.remember(key, id)) });
}

describe('record-id index', () => {
  it('answers in chunks exactly as id by id: all new, all seen, mixed, repeats inside a list, across two generations', () => {
    const rand = rng(42);
    let now = 0;
    const { db, index } = openIndex(now);
    const model = new Model(now);
    const pool = Array.from({ length: 600 }, (_, i) => (i % 3 === 0 ? `id-${i}` : i % 3 === 1 ? `id-${i}-b` : `${i}`));
    let chunkedLists = 0;
    for (let round = 0; round < 120; round++) {
      now += Math.floor(rand() * 250);
      const key = 1 + Math.floor(rand() * 2);
      // Mostly fresh runs (the chunk path), some reuse of old ids, some repeats within the list.
      const n = Math.floor(rand() * 200);
      const ids: string[] = [];
      // Numbered ids (ranges) and others (chunks) mixed: fresh runs of each, old ids of each, ids
      // that only look numbered (a leading zero), and repeats within the list.
      const kind = rand();
      for (let i = 0; i < n; i++) {
        const r = rand();
        const fresh = kind < 0.5 ? `fresh-${round}-${i}` : kind < 0.8 ? `fresh-${round}-${i}x` : `f-${round}-0${i}`;
        ids.push(r < 0.7 ? fresh : r < 0.95 ? pool[Math.floor(rand() * pool.length)]! : ids[Math.floor(rand() * Math.max(1, ids.length))] ?? 'x');
      }
      if (n >= 64) chunkedLists++;
      expectAsModel(db, index, model, now, key, ids, round);
    }
    expect(chunkedLists).toBeGreaterThan(20);
    expect(index.state().previousEmpty).toBe(false);
    db.close();
  });

  it('leaves nothing behind from a chunk it had to answer id by id', () => {
    const { db, index } = openIndex(0);
    // Not numbered (the letter at the end): these go through the chunks.
    const first = Array.from({ length: 64 }, (_, i) => `a${i}z`);
    db.transaction(() => index.rememberAll(7, first.slice(0, 10)))();
    // 10 seen, 54 new: the chunk insert is rolled back and its halves are tried, down to single ids.
    const got = db.transaction(() => index.rememberAll(7, first))();
    expect(got).toEqual(first.map((_, i) => i >= 10));
    expect(db.prepare('SELECT count(*) FROM id_gen_0').pluck().get()).toBe(64);
    // All seen now: one chunk statement, nothing inserted.
    expect(db.transaction(() => index.rememberAll(7, first))()).toEqual(first.map(() => false));
    // Another stream key does not share ids.
    expect(db.transaction(() => index.rememberAll(8, first))()).toEqual(first.map(() => true));
    db.close();
  });

  it('is a no-op when the window is 0', () => {
    const db = new Database(':memory:');
    migrate(db);
    const index = new IdIndex(db, 0);
    index.open(0);
    expect(index.rememberAll(1, ['a', 'a', 'b1', 'b1'])).toEqual([true, true, true, true]);
    expect(db.prepare('SELECT count(*) FROM id_gen_0').pluck().get()).toBe(0);
    expect(db.prepare('SELECT count(*) FROM id_range_gen_0').pluck().get()).toBe(0);
    db.close();
  });

  it('keeps a run of numbered ids as one row, and answers exactly in any order', () => {
    const { db, index } = openIndex(0);
    const run = Array.from({ length: 1_000 }, (_, i) => `orders.csv:ab12:${i + 1}`);
    expect(db.transaction(() => index.rememberAll(3, run))()).toEqual(run.map(() => true));
    const rows = () => db.prepare('SELECT prefix, lo, hi FROM id_range_gen_0 ORDER BY prefix, lo').all();
    expect(rows()).toEqual([{ prefix: 'orders.csv:ab12:', lo: 1, hi: 1_000 }]);
    // The next batch extends the row; a gap starts another; backwards ids fill in one by one.
    const next = Array.from({ length: 500 }, (_, i) => `orders.csv:ab12:${i + 1_001}`);
    const later = Array.from({ length: 10 }, (_, i) => `orders.csv:ab12:${2_000 - i}`);
    expect(db.transaction(() => [...index.rememberAll(3, next), ...index.rememberAll(3, later)])()).toEqual([...next, ...later].map(() => true));
    expect(rows()).toHaveLength(1 + 10);
    expect(rows()[0]).toEqual({ prefix: 'orders.csv:ab12:', lo: 1, hi: 1_500 });
    // A resend overlapping both ends and a repeat inside the list.
    const resend = [...Array.from({ length: 20 }, (_, i) => `orders.csv:ab12:${1_490 + i}`), 'orders.csv:ab12:1995', 'orders.csv:ab12:1501'];
    expect(db.transaction(() => index.rememberAll(3, resend))()).toEqual([...Array(11).fill(false), ...Array(9).fill(true), false, false]);
    db.close();
  });
});

describe('numbered ids alone (a hash or a version at the end)', () => {
  it('are answered a chunk at a time exactly as id by id, in list order around the runs', () => {
    const rand = rng(7);
    let now = 0;
    const { db, index } = openIndex(now);
    const model = new Model(now);
    const seen: string[] = [];
    for (let round = 0; round < 30; round++) {
      now += 300;
      const ids: string[] = [];
      // Up to ~700 ids: more than one chunk of singles, with a run of the same prefix in the middle
      // that covers a single seen just before it, repeats inside the list and ids from earlier rounds.
      const n = 300 + Math.floor(rand() * 400);
      for (let i = 0; i < n; i++) {
        const r = rand();
        if (r < 0.6) ids.push(`sql/orders/SO-${Math.floor(rand() * 5_000)}/${1_700_000_000 + Math.floor(rand() * 1_000)}`);
        else if (r < 0.75 && seen.length) ids.push(seen[Math.floor(rand() * seen.length)]!);
        else if (r < 0.85 && ids.length) ids.push(ids[Math.floor(rand() * ids.length)]!);
        else if (r < 0.9) for (let k = 0; k < 6; k++) ids.push(`run/${round}/${i + k}`);
        else ids.push(`run/${round}/${i + 2}`);
      }
      expectAsModel(db, index, model, now, 9, ids, round);
      seen.push(...ids.slice(0, 50));
    }
    db.close();
  });
});

describe('numbered ids', () => {
  it('are a prefix and 1 to 15 digits without a leading zero', () => {
    expect(numberedId('load:9c1e:100000')).toEqual({ prefix: 'load:9c1e:', n: 100_000 });
    expect(numberedId('41')).toEqual({ prefix: '', n: 41 });
    expect(numberedId('x0')).toEqual({ prefix: 'x', n: 0 });
    expect(numberedId('x' + '9'.repeat(15))).toEqual({ prefix: 'x', n: 999_999_999_999_999 });
    for (const id of ['x01', 'x00', 'abc', '', 'x' + '1'.repeat(16), '1'.repeat(20), 'x1 ', 'x١']) expect(numberedId(id), id).toBeUndefined();
  });

  it('isNumbered agrees with numberedId', () => {
    const ids = ['a1', 'a10', 'a010', 'a', '7', '0', '00', 'b999999999999999', 'b1000000000000000', 'a1b1'];
    for (const id of ids) {
      for (const [prefix, n] of [['a', 1], ['a', 10], ['', 7], ['', 0], ['b', 999_999_999_999_999], ['b', 1_000_000_000_000_000], ['a1b', 1]] as const) {
        const p = numberedId(id);
        expect(isNumbered(id, prefix, n), `${id} ${prefix} ${n}`).toBe(p !== undefined && p.prefix === prefix && p.n === n);
      }
    }
  });

  it('runsOf makes runs of sorted numbers', () => {
    expect(runsOf([1, 2, 3, 5, 5, 6, 9])).toEqual([
      [1, 3],
      [5, 6],
      [9, 9],
    ]);
    expect(runsOf([])).toEqual([]);
  });
});
