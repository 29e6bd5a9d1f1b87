import type Database from 'better-sqlite3';

/**
 * Numbered record ids kept as ranges. Most ids an agent makes are a fixed prefix and a counter
 * (`orders.csv:3f2a…:41`, `load:9c1e…:100000`, `<table>:<lsn>`): a batch of 1 000 of them is one
 * run `prefix` + 1..1000, remembered as one row (stream_key, prefix, lo, hi) instead of 1 000 rows.
 * That is what made the id index most of the relay's cost per record (bench: durable-e2e).
 *
 * An id is numbered when it ends in 1 to 15 decimal digits (below 2^53: exact as a number) with no
 * leading zero (so that the number gives back the same id: `x01` and `x1` are two ids, and `x01`
 * is not numbered). The prefix is everything before those digits; other ids stay in id_gen_* one
 * row each (id-index.ts).
 *
 * Ranges of one (stream_key, prefix) in a generation never overlap (an id is added only when no
 * range holds it), so the range that could hold a number is the last one starting at or before it:
 * one index seek answers "is it there", for a number or for a whole run.
 */
const MAX_DIGITS = 15;

export interface NumberedId {
  prefix: string;
  n: number;
}

/** The id as prefix + number, or undefined when it is not numbered (see above). */
export function numberedId(id: string): NumberedId | undefined {
  const end = id.length;
  let start = end;
  let n = 0;
  let scale = 1;
  while (start > 0 && end - start < MAX_DIGITS + 1) {
    const c = id.charCodeAt(start - 1);
    if (c < 48 || c > 57) break;
    n += (c - 48) * scale;
    scale *= 10;
    start--;
  }
  const digits = end - start;
  // More than MAX_DIGITS (the loop stops one past): not numbered.
  if (digits === 0 || digits > MAX_DIGITS) return undefined;
  if (digits > 1 && id.charCodeAt(start) === 48) return undefined;
  return { prefix: id.slice(0, start), n };
}

/** The largest number of a numbered id (MAX_DIGITS digits). */
export const MAX_ID_NUMBER = 10 ** MAX_DIGITS - 1;

/** Whether `id` is `prefix` followed by exactly the number `n` (no allocation): numberedId(id) would give them. */
export function isNumbered(id: string, prefix: string, n: number): boolean {
  if (n > MAX_ID_NUMBER || !id.startsWith(prefix)) return false;
  let m = n;
  let i = id.length;
  // The digits of n from the right, then the prefix must start exactly where they end.
  do {
    if (i <= prefix.length || id.charCodeAt(--i) !== 48 + (m % 10)) return false;
    m = Math.floor(m / 10);
  } while (m > 0);
  return i === prefix.length;
}

/**
 * Calls fn(from, n) over [0, length) in chunks whose sizes are powers of two, largest first, at most
 * `max` (a power of two): a statement per chunk size is prepared once, and 1 000 items are 6 chunks
 * (512 + 256 + 128 + 64 + 32 + 8), not many small ones.
 */
export function forEachPowerOfTwoChunk(length: number, max: number, fn: (from: number, n: number) => void): void {
  let i = 0;
  while (i < length) {
    let n = max;
    while (n > length - i) n >>= 1;
    fn(i, n);
    i += n;
  }
}

/** Sorted, distinct numbers as [lo, hi] runs. */
export function runsOf(sorted: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const n of sorted) {
    const last = out[out.length - 1];
    if (last && n === last[1] + 1) last[1] = n;
    else if (!last || n > last[1]) out.push([n, n]);
  }
  return out;
}

type Gen = 0 | 1;

/** A numbered id answered on its own, and where its answer goes. */
export interface SingleId {
  prefix: string;
  n: number;
  at: number;
}

/** Singles per statement; chunks are powers of two down to 1 (a statement per size, per generation). */
const MAX_SINGLES_CHUNK = 256;

/** A run shorter than this is answered as singles (a run costs two seeks and a write on its own). */
export const MIN_RUN = 4;

/** The numbered ids of one generation table pair (id_range_gen_0, id_range_gen_1). */
export class IdRanges {
  private readonly lastAtOrBefore: [Database.Statement<[number, string, number], [number, number]>, Database.Statement<[number, string, number], [number, number]>];
  private readonly insert: [Database.Statement<[number, string, number, number]>, Database.Statement<[number, string, number, number]>];
  private readonly extend: [Database.Statement<[number, number, string, number]>, Database.Statement<[number, number, string, number]>];
  private readonly anyRows: [Database.Statement<[], number>, Database.Statement<[], number>];
  /** By chunk size (a power of two) and generation, prepared on first use: see rememberSingles. */
  private readonly singleStatements = new Map<number, { covered: [Database.Statement<unknown[], number>, Database.Statement<unknown[], number>]; insert: [Database.Statement<unknown[]>, Database.Statement<unknown[]>] }>();
  private readonly clearAll: [Database.Statement<[]>, Database.Statement<[]>];

  constructor(private readonly db: Database.Database) {
    const both = <T>(f: (t: string) => T): [T, T] => [f('id_range_gen_0'), f('id_range_gen_1')];
    this.lastAtOrBefore = both((t) =>
      db.prepare<[number, string, number], [number, number]>(`SELECT lo, hi FROM ${t} WHERE stream_key = ? AND prefix = ? AND lo <= ? ORDER BY lo DESC LIMIT 1`).raw(),
    );
    this.insert = both((t) => db.prepare<[number, string, number, number]>(`INSERT INTO ${t} (stream_key, prefix, lo, hi) VALUES (?, ?, ?, ?)`));
    this.extend = both((t) => db.prepare<[number, number, string, number]>(`UPDATE ${t} SET hi = ? WHERE stream_key = ? AND prefix = ? AND lo = ?`));
    this.anyRows = both((t) => db.prepare<[], number>(`SELECT EXISTS (SELECT 1 FROM ${t})`).pluck());
    this.clearAll = both((t) => db.prepare<[]>(`DELETE FROM ${t}`));
  }

  any(gen: Gen): boolean {
    return this.anyRows[gen].get() === 1;
  }

  clear(gen: Gen): void {
    this.clearAll[gen].run();
  }

  /**
   * remember() for the run prefix + a..b (ascending, consecutive), answers into out[at..]: true
   * where the id is new (now in `current`), false where `current` or (unless `previousEmpty`)
   * `previous` held it. The common case, a run nobody has seen, costs a seek per generation and
   * one write; a run that meets a range is answered number by number.
   */
  rememberRun(key: number, prefix: string, a: number, b: number, current: Gen, previous: Gen | undefined, out: boolean[], at: number): void {
    const before = this.lastAtOrBefore[current].get(key, prefix, b);
    const inCurrent = before !== undefined && before[1] >= a;
    const inPrevious = !inCurrent && previous !== undefined && this.holds(previous, key, prefix, a, b);
    if (!inCurrent && !inPrevious) {
      this.add(current, key, prefix, a, b, before);
      out.fill(true, at, at + b - a + 1);
      return;
    }
    for (let n = a; n <= b; n++) out[at + n - a] = this.rememberOne(key, prefix, n, current, previous);
  }

  /**
   * remember() for numbered ids that came alone or in short runs (a hash or a version at the end:
   * `…/SO-1001/928bbdfc27891fe3`, `…/orders/42/1700000000`): each its own range row, but a chunk at
   * a time, in three statements (which are held by the current generation, which by the previous
   * one, insert the rest), not three per id. `items` are distinct ids, in list order.
   */
  rememberSingles(key: number, items: readonly SingleId[], current: Gen, previous: Gen | undefined, out: boolean[]): void {
    forEachPowerOfTwoChunk(items.length, MAX_SINGLES_CHUNK, (from, n) => this.singlesChunk(key, items, from, n, current, previous, out));
  }

  private singlesChunk(key: number, items: readonly SingleId[], from: number, n: number, current: Gen, previous: Gen | undefined, out: boolean[]): void {
    const st = this.singles(n);
    const args = new Array<unknown>(n * 4);
    for (let j = 0; j < n; j++) {
      const it = items[from + j]!;
      args[4 * j] = j;
      args[4 * j + 1] = key;
      args[4 * j + 2] = it.prefix;
      args[4 * j + 3] = it.n;
    }
    const inCurrent = new Set(st.covered[current].all(...args));
    const inPrevious = previous === undefined ? undefined : new Set(st.covered[previous].all(...args));
    for (let j = 0; j < n; j++) out[items[from + j]!.at] = !inCurrent.has(j) && !(inPrevious?.has(j) ?? false);
    // Those the current generation lacks go in (carried there when the previous one held them).
    if (inCurrent.size < n) st.insert[current].run(...args);
  }

  private singles(n: number) {
    let st = this.singleStatements.get(n);
    if (!st) {
      const values = Array.from({ length: n }, () => '(?, ?, ?, ?)').join(', ');
      // The range that could hold v's number: the last one of its prefix starting at or before it.
      const holds = (t: string) => `coalesce((SELECT r.hi FROM ${t} r WHERE r.stream_key = v.column2 AND r.prefix = v.column3 AND r.lo <= v.column4 ORDER BY r.lo DESC LIMIT 1) >= v.column4, 0)`;
      const both = <T>(f: (t: string) => T): [T, T] => [f('id_range_gen_0'), f('id_range_gen_1')];
      st = {
        covered: both((t) => this.db.prepare<unknown[], number>(`SELECT v.column1 FROM (VALUES ${values}) AS v WHERE ${holds(t)}`).pluck()),
        insert: both((t) => this.db.prepare<unknown[]>(`INSERT INTO ${t} (stream_key, prefix, lo, hi) SELECT v.column2, v.column3, v.column4, v.column4 FROM (VALUES ${values}) AS v WHERE NOT ${holds(t)}`)),
      };
      this.singleStatements.set(n, st);
    }
    return st;
  }

  private rememberOne(key: number, prefix: string, n: number, current: Gen, previous: Gen | undefined): boolean {
    const before = this.lastAtOrBefore[current].get(key, prefix, n);
    if (before !== undefined && before[1] >= n) return false;
    // Seen in the previous generation: carried into the current one all the same (id-index.ts).
    const seen = previous !== undefined && this.holds(previous, key, prefix, n, n);
    this.add(current, key, prefix, n, n, before);
    return !seen;
  }

  /** Whether any number of a..b is in the generation. */
  private holds(gen: Gen, key: number, prefix: string, a: number, b: number): boolean {
    const r = this.lastAtOrBefore[gen].get(key, prefix, b);
    return r !== undefined && r[1] >= a;
  }

  /** Adds a..b, which no range holds; `before` is the last range starting before it (it grows when it ends at a - 1). */
  private add(gen: Gen, key: number, prefix: string, a: number, b: number, before: [number, number] | undefined): void {
    if (before !== undefined && before[1] === a - 1) this.extend[gen].run(b, key, prefix, before[0]);
    else this.insert[gen].run(key, prefix, a, b);
  }
}

/**
 * Store migration 9's data step: the numbered ids a 0.4 relay kept one row each in id_gen_* move to
 * id_range_gen_* of the same generation, so that an id remembered before the upgrade is still
 * recognised after it. One stream key at a time, so the ids of one key are in memory at most.
 */
export function moveNumberedIds(db: Database.Database): void {
  for (const gen of [0, 1] as const) {
    const keys = db.prepare<[], number>(`SELECT DISTINCT stream_key FROM id_gen_${gen}`).pluck().all();
    const idsOf = db.prepare<[number], string>(`SELECT id FROM id_gen_${gen} WHERE stream_key = ?`).pluck();
    const remove = db.prepare<[number, string]>(`DELETE FROM id_gen_${gen} WHERE stream_key = ? AND id = ?`);
    const insert = db.prepare<[number, string, number, number]>(`INSERT INTO id_range_gen_${gen} (stream_key, prefix, lo, hi) VALUES (?, ?, ?, ?)`);
    for (const key of keys) {
      const byPrefix = new Map<string, number[]>();
      for (const id of idsOf.all(key)) {
        const p = numberedId(id);
        if (!p) continue;
        let list = byPrefix.get(p.prefix);
        if (!list) byPrefix.set(p.prefix, (list = []));
        list.push(p.n);
        remove.run(key, id);
      }
      for (const [prefix, ns] of byPrefix) {
        for (const [lo, hi] of runsOf(ns.sort((x, y) => x - y))) insert.run(key, prefix, lo, hi);
      }
    }
  }
}
