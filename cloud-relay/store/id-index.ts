import type Database from 'better-sqlite3';
import { forEachPowerOfTwoChunk, IdRanges, isNumbered, MIN_RUN, numberedId, type SingleId } from './id-ranges.js';

/**
 * Record ids seen within the de-duplication window, per stream key (site, agent, stream across
 * epochs), in two generation tables (id_gen_0, id_gen_1; see migrations.ts); and, for records
 * with a business key, the id last stored per key (key_gen_0, key_gen_1), rotated together.
 *
 * New ids go into the current generation; a lookup reads both. When the current generation is
 * one window old, the older one is emptied and becomes current: pruning is one table clear per
 * window, never a delete per row, and an id is remembered for at least one window (at most two).
 *
 * Cost: ids are remembered a chunk at a time: one multi-row INSERT OR IGNORE (skipping ids the
 * previous generation holds) under a savepoint. When it inserted every id of the chunk (the
 * common case: nothing seen before) that is all; when it inserted none, all were seen; otherwise
 * it is rolled back to the savepoint and the chunk is tried again as two halves, down to single
 * ids (INSERT OR IGNORE, whose `changes` says whether the id is new, after a point lookup in the
 * previous generation). Chunks are powers of two from MIN_CHUNK to MAX_CHUNK rows, so a batch of
 * 1 000 ids is 6 statements (512 + 256 + 128 + 64 + 32 + 8), not 15 of 64 and 40 single ones:
 * each statement and savepoint costs as much as inserting tens of ids.
 * Keys are (INTEGER, TEXT) in a WITHOUT ROWID B-tree: ids that sort near each other land in few
 * pages; random ids (UUIDs) dirty a page each and cost ~10x.
 *
 * Numbered ids (a prefix and a counter: file hash + row, name + counter; id-ranges.ts) never go
 * through the chunks: a run of them is one range row, in id_range_gen_0 and _1 beside the id tables.
 */
const MAX_CHUNK = 512;
/** Below this, ids go one by one (a statement per size is prepared once, on first use). */
const MIN_CHUNK = 8;

/** One chunk size's statements, per generation: plain (previous generation empty), or unless the other generation holds the id. */
interface ChunkStatements {
  plain: [Database.Statement<unknown[]>, Database.Statement<unknown[]>];
  unlessPrevious: [Database.Statement<unknown[]>, Database.Statement<unknown[]>];
}

export class IdIndex {
  private current: 0 | 1 = 0;
  private startedAt = 0;
  private previousEmpty = true;
  private readonly insert: [Database.Statement<[number, string]>, Database.Statement<[number, string]>];
  private readonly has: [Database.Statement<[number, string]>, Database.Statement<[number, string]>];
  private readonly anyIn: [Database.Statement<[]>, Database.Statement<[]>];
  private readonly clear: [Database.Statement<[]>, Database.Statement<[]>];
  /** By chunk size (a power of two), prepared on first use. */
  private readonly chunkStatements = new Map<number, ChunkStatements>();
  private readonly savepoint: { begin: Database.Statement<[]>; release: Database.Statement<[]>; rollback: Database.Statement<[]> };
  private readonly getMeta: Database.Statement<[string], { value: string }>;
  private readonly lastIdOf: [Database.Statement<[number, string], string>, Database.Statement<[number, string], string>];
  private readonly setLastId: [Database.Statement<[number, string, string]>, Database.Statement<[number, string, string]>];
  private readonly clearKeys: [Database.Statement<[]>, Database.Statement<[]>];
  private readonly setMeta: Database.Statement<[string, string]>;
  private readonly ranges: IdRanges;

  constructor(
    private readonly db: Database.Database,
    /** 0 turns de-duplication by id off. */
    readonly windowMs: number,
  ) {
    const gen = (n: 0 | 1) => `id_gen_${n}`;
    const both = <T>(f: (t: string) => T): [T, T] => [f(gen(0)), f(gen(1))];
    this.insert = both((t) => db.prepare<[number, string]>(`INSERT OR IGNORE INTO ${t} (stream_key, id) VALUES (?, ?)`));
    this.has = both((t) => db.prepare<[number, string]>(`SELECT 1 FROM ${t} WHERE stream_key = ? AND id = ?`).pluck());
    this.anyIn = both((t) => db.prepare<[]>(`SELECT EXISTS (SELECT 1 FROM ${t})`).pluck());
    this.clear = both((t) => db.prepare<[]>(`DELETE FROM ${t}`));
    this.savepoint = {
      begin: db.prepare<[]>('SAVEPOINT id_chunk'),
      release: db.prepare<[]>('RELEASE id_chunk'),
      rollback: db.prepare<[]>('ROLLBACK TO id_chunk'),
    };
    this.getMeta = db.prepare<[string], { value: string }>('SELECT value FROM relay_meta WHERE key = ?');
    const keyGen = <T>(f: (t: string) => T): [T, T] => [f('key_gen_0'), f('key_gen_1')];
    this.lastIdOf = keyGen((t) => db.prepare<[number, string], string>(`SELECT id FROM ${t} WHERE stream_key = ? AND key = ?`).pluck());
    this.setLastId = keyGen((t) =>
      db.prepare<[number, string, string]>(`INSERT INTO ${t} (stream_key, key, id) VALUES (?, ?, ?) ON CONFLICT (stream_key, key) DO UPDATE SET id = excluded.id`),
    );
    this.clearKeys = keyGen((t) => db.prepare<[]>(`DELETE FROM ${t}`));
    this.setMeta = db.prepare<[string, string]>('INSERT INTO relay_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
    this.ranges = new IdRanges(db);
  }

  private chunk(n: number): ChunkStatements {
    let c = this.chunkStatements.get(n);
    if (!c) {
      const rows = Array.from({ length: n }, () => '(?, ?)').join(', ');
      const plain = (t: string) => this.db.prepare<unknown[]>(`INSERT OR IGNORE INTO ${t} (stream_key, id) VALUES ${rows}`);
      const unless = (t: string, other: string) =>
        this.db.prepare<unknown[]>(
          `INSERT OR IGNORE INTO ${t} (stream_key, id) SELECT v.column1, v.column2 FROM (VALUES ${rows}) AS v
           WHERE NOT EXISTS (SELECT 1 FROM ${other} p WHERE p.stream_key = v.column1 AND p.id = v.column2)`,
        );
      c = { plain: [plain('id_gen_0'), plain('id_gen_1')], unlessPrevious: [unless('id_gen_0', 'id_gen_1'), unless('id_gen_1', 'id_gen_0')] };
      this.chunkStatements.set(n, c);
    }
    return c;
  }

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  /** Reads the generation state (starting generation 0 at `now` in a new store); call once after migrations. */
  open(now: number): void {
    if (!this.reload()) {
      this.current = 0;
      this.startedAt = now;
      this.previousEmpty = true;
      this.db.transaction(() => this.saveState())();
    }
  }

  /** Re-reads the state from the database, e.g. after a rolled-back transaction that had rotated. */
  reload(): boolean {
    const cur = this.getMeta.get('id_gen_current')?.value;
    const started = this.getMeta.get('id_gen_started_at')?.value;
    if (cur === undefined || started === undefined) return false;
    this.current = cur === '1' ? 1 : 0;
    this.startedAt = Number(started);
    this.previousEmpty = this.isEmpty(this.previous);
    return true;
  }

  private isEmpty(gen: 0 | 1): boolean {
    return !this.anyIn[gen]!.get() && !this.ranges.any(gen);
  }

  private get previous(): 0 | 1 {
    return this.current === 0 ? 1 : 0;
  }

  private saveState(): void {
    this.setMeta.run('id_gen_current', String(this.current));
    this.setMeta.run('id_gen_started_at', String(this.startedAt));
  }

  /**
   * Inside a transaction, before any lookup: when the current generation is a window old, empties
   * the previous one and makes it current. Returns whether it rotated.
   */
  rotateIfDue(now: number): boolean {
    if (!this.enabled || now - this.startedAt < this.windowMs) return false;
    const older = this.previous;
    this.clearGeneration(older);
    // Two windows or more since the current one began (a quiet relay): it is stale as well.
    if (now - this.startedAt >= 2 * this.windowMs) this.clearGeneration(this.current);
    this.previousEmpty = this.isEmpty(this.current);
    this.current = older;
    this.startedAt = now;
    this.saveState();
    return true;
  }

  private clearGeneration(gen: 0 | 1): void {
    this.clear[gen]!.run();
    this.ranges.clear(gen);
    this.clearKeys[gen]!.run();
  }

  /**
   * For an id that is not numbered (rememberAll sends numbered ids to the ranges): false when
   * (key, id) was remembered within the window; otherwise remembers it. A hit in the
   * previous generation is carried into the current one: an id seen again and again (a daily
   * re-export) stays remembered for as long as it keeps coming, not one window from its first sight.
   */
  private remember(key: number, id: string): boolean {
    if (!this.previousEmpty && this.has[this.previous]!.get(key, id) !== undefined) {
      this.insert[this.current]!.run(key, id);
      return false;
    }
    return this.insert[this.current]!.run(key, id).changes === 1;
  }

  /**
   * For records with a business key, in order: true where the record's id is not the id last
   * stored for its key (then it becomes it), false where it is (a re-export of an unchanged row).
   */
  rememberLatest(streamKey: number, records: readonly { key: string; id: string }[]): boolean[] {
    if (!this.enabled) return records.map(() => true);
    const latest = new Map<string, string | undefined>();
    return records.map(({ key, id }) => {
      if (!latest.has(key)) {
        latest.set(key, this.lastIdOf[this.current]!.get(streamKey, key) ?? (this.previousEmpty ? undefined : this.lastIdOf[this.previous]!.get(streamKey, key)));
      }
      const last = latest.get(key);
      // Seen again: carried into the current generation, like remember().
      this.setLastId[this.current]!.run(streamKey, key, id);
      latest.set(key, id);
      return last !== id;
    });
  }

  /**
   * Each id in order, in a transaction: true where the id is new (now remembered), false where it
   * was remembered within the window or earlier in the list.
   */
  rememberAll(key: number, ids: readonly string[]): boolean[] {
    const out = new Array<boolean>(ids.length);
    if (!this.enabled) return out.fill(true);
    // Numbered ids by runs, in order (a repeat inside the list meets the range its first sighting
    // made); ids alone or in short runs gather as singles, answered a chunk at a time before the
    // next long run, for the same reason. The others, in order, by chunks: the two never share an id.
    const others: number[] = [];
    const previous = this.previousEmpty ? undefined : this.previous;
    let singles: SingleId[] = [];
    let pending = new Set<string>();
    const flushSingles = () => {
      if (singles.length > 0) this.ranges.rememberSingles(key, singles, this.current, previous, out);
      singles = [];
      pending = new Set();
    };
    let i = 0;
    while (i < ids.length) {
      const p = numberedId(ids[i]!);
      if (!p) {
        others.push(i++);
        continue;
      }
      let j = i + 1;
      while (j < ids.length && isNumbered(ids[j]!, p.prefix, p.n + j - i)) j++;
      if (j - i >= MIN_RUN) {
        flushSingles();
        this.ranges.rememberRun(key, p.prefix, p.n, p.n + j - i - 1, this.current, previous, out, i);
      } else {
        for (let k = i; k < j; k++) {
          // Twice among the singles waiting: the later one is a repeat inside the list.
          if (pending.has(ids[k]!)) out[k] = false;
          else {
            pending.add(ids[k]!);
            singles.push({ prefix: p.prefix, n: p.n + k - i, at: k });
          }
        }
      }
      i = j;
    }
    flushSingles();
    if (others.length === ids.length) this.rememberChunks(key, ids, out);
    else if (others.length > 0) {
      const answers = new Array<boolean>(others.length);
      this.rememberChunks(
        key,
        others.map((k) => ids[k]!),
        answers,
      );
      others.forEach((k, m) => (out[k] = answers[m]!));
    }
    return out;
  }

  /** rememberAll for ids that are not numbered: chunk by chunk into out. */
  private rememberChunks(key: number, ids: readonly string[], out: boolean[]): void {
    forEachPowerOfTwoChunk(ids.length, MAX_CHUNK, (from, n) => this.rememberRange(key, ids, from, n, out));
  }

  /** remember() for ids[from, from + n) (n a power of two) into out: a chunk, or its halves when the chunk is mixed. */
  private rememberRange(key: number, ids: readonly string[], from: number, n: number, out: boolean[]): void {
    if (n < MIN_CHUNK) {
      for (let j = from; j < from + n; j++) out[j] = this.remember(key, ids[j]!);
      return;
    }
    const all = this.tryChunk(key, ids, from, n);
    if (all !== undefined) out.fill(all, from, from + n);
    else {
      this.rememberRange(key, ids, from, n / 2, out);
      this.rememberRange(key, ids, from + n / 2, n / 2, out);
    }
  }

  /** true: every id of the chunk was new (now remembered); false: none was; undefined: some were (nothing changed). */
  private tryChunk(key: number, ids: readonly string[], from: number, n: number): boolean | undefined {
    const args = new Array<unknown>(n * 2);
    for (let j = 0; j < n; j++) {
      args[2 * j] = key;
      args[2 * j + 1] = ids[from + j];
    }
    const c = this.chunk(n);
    const stmt = this.previousEmpty ? c.plain[this.current] : c.unlessPrevious[this.current];
    this.savepoint.begin.run();
    const changes = stmt.run(...args).changes;
    if (changes === n || changes === 0) {
      // All seen before: those the previous generation held are carried into the current one.
      if (changes === 0 && !this.previousEmpty) c.plain[this.current].run(...args);
      this.savepoint.release.run();
      return changes === n;
    }
    this.savepoint.rollback.run();
    this.savepoint.release.run();
    return undefined;
  }

  /** State for tests and diagnostics. */
  state(): { current: 0 | 1; startedAt: number; previousEmpty: boolean } {
    return { current: this.current, startedAt: this.startedAt, previousEmpty: this.previousEmpty };
  }
}
