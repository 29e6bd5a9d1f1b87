import type Database from 'better-sqlite3';

/**
 * Record ids seen within the de-duplication window, per stream key (site, agent, stream across
 * epochs), in two generation tables (id_gen_0, id_gen_1; see migrations.ts).
 *
 * New ids go into the current generation; a lookup reads both. When the current generation is
 * one window old, the older one is emptied and becomes current: pruning is one table clear per
 * window, never a delete per row, and an id is remembered for at least one window (at most two).
 *
 * Cost: one INSERT OR IGNORE (its `changes` says whether the id is new) plus, while the previous
 * generation holds anything, one point lookup there. Keys are (INTEGER, TEXT) in a WITHOUT ROWID
 * B-tree: ids that sort near each other (file hash + row, name + counter) land in few pages.
 */
export class IdIndex {
  private current: 0 | 1 = 0;
  private startedAt = 0;
  private previousEmpty = true;
  private readonly insert: [Database.Statement<[number, string]>, Database.Statement<[number, string]>];
  private readonly has: [Database.Statement<[number, string]>, Database.Statement<[number, string]>];
  private readonly anyIn: [Database.Statement<[]>, Database.Statement<[]>];
  private readonly clear: [Database.Statement<[]>, Database.Statement<[]>];
  private readonly getMeta: Database.Statement<[string], { value: string }>;
  private readonly setMeta: Database.Statement<[string, string]>;

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
    this.getMeta = db.prepare<[string], { value: string }>('SELECT value FROM relay_meta WHERE key = ?');
    this.setMeta = db.prepare<[string, string]>('INSERT INTO relay_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value');
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
    this.previousEmpty = !this.anyIn[this.previous]!.get();
    return true;
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
    this.clear[older]!.run();
    this.previousEmpty = !this.anyIn[this.current]!.get();
    this.current = older;
    this.startedAt = now;
    this.saveState();
    return true;
  }

  /** False when (key, id) was remembered within the window; otherwise remembers it. */
  remember(key: number, id: string): boolean {
    if (!this.enabled) return true;
    if (!this.previousEmpty && this.has[this.previous]!.get(key, id) !== undefined) return false;
    return this.insert[this.current]!.run(key, id).changes === 1;
  }

  /** State for tests and diagnostics. */
  state(): { current: 0 | 1; startedAt: number; previousEmpty: boolean } {
    return { current: this.current, startedAt: this.startedAt, previousEmpty: this.previousEmpty };
  }
}
