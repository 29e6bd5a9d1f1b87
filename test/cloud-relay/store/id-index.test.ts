import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { IdIndex } from '../../../cloud-relay/store/id-index.js';
import { migrate } from '../../../cloud-relay/store/migrations.js';

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

describe('record-id index', () => {
  it('answers in chunks exactly as id by id: all new, all seen, mixed, repeats inside a list, across two generations', () => {
    const rand = rng(42);
    let now = 0;
    const { db, index } = openIndex(now);
    const model = new Model(now);
    const pool = Array.from({ length: 600 }, (_, i) => `id-${i}`);
    let chunkedLists = 0;
    for (let round = 0; round < 120; round++) {
      now += Math.floor(rand() * 250);
      const key = 1 + Math.floor(rand() * 2);
      // Mostly fresh runs (the chunk path), some reuse of old ids, some repeats within the list.
      const n = Math.floor(rand() * 200);
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const r = rand();
        ids.push(r < 0.7 ? `fresh-${round}-${i}` : r < 0.95 ? pool[Math.floor(rand() * pool.length)]! : ids[Math.floor(rand() * Math.max(1, ids.length))] ?? 'x');
      }
      if (n >= 64) chunkedLists++;
      const got = db.transaction(() => {
        index.rotateIfDue(now);
        return index.rememberAll(key, ids);
      })();
      model.rotateIfDue(now);
      const want = ids.map((id) => model.remember(key, id));
      expect({ round, got }).toEqual({ round, got: want });
    }
    expect(chunkedLists).toBeGreaterThan(20);
    expect(index.state().previousEmpty).toBe(false);
    db.close();
  });

  it('leaves nothing behind from a chunk it had to answer id by id', () => {
    const { db, index } = openIndex(0);
    const first = Array.from({ length: 64 }, (_, i) => `a${i}`);
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
    expect(index.rememberAll(1, ['a', 'a'])).toEqual([true, true]);
    expect(db.prepare('SELECT count(*) FROM id_gen_0').pluck().get()).toBe(0);
    db.close();
  });
});
