import type { SqliteDb, Statement } from './sqlite.js';

/**
 * The version last captured per source key, per collector and scope (a SQL collector's table),
 * written in the same transaction as the records: whether a row read again is new, changed or
 * already sent, and whether a change is an insert or an update, without holding every key in
 * memory or rewriting a checkpoint. One row per key of a captured table.
 */
export interface KeyVersionsInput {
  /** e.g. the table. */
  scope: string;
  /** [key, version, the key's values as JSON] to store. */
  set: readonly (readonly [key: string, version: string, keyValues?: string])[];
  /** Keys to forget (the source row is gone). */
  delete?: readonly string[];
}

export interface StoredKey {
  key: string;
  /** JSON of the key's values, null when none was stored. */
  values: string | null;
}

/** Keys looked up per statement (SQLite's host parameter limit is far above; a page is ~1 000). */
const LOOKUP_CHUNK = 500;

export class KeyVersions {
  private readonly upsert: Statement<[string, string, string, string, string | null]>;
  private readonly count: Statement<[string, string], { n: number }>;
  private readonly remove: Statement<[string, string, string]>;
  private readonly page: Statement<[string, string, string, number], { key: string; key_values: string | null }>;
  private readonly lookups = new Map<number, Statement<unknown[], { key: string; version: string }>>();

  constructor(private readonly db: SqliteDb) {
    this.upsert = db.prepare(
      'INSERT INTO key_versions (collector, scope, key, version, key_values) VALUES (?, ?, ?, ?, ?) ON CONFLICT (collector, scope, key) DO UPDATE SET version = excluded.version, key_values = excluded.key_values',
    );
    this.count = db.prepare('SELECT count(*) AS n FROM key_versions WHERE collector = ? AND scope = ?');
    this.remove = db.prepare('DELETE FROM key_versions WHERE collector = ? AND scope = ? AND key = ?');
    this.page = db.prepare('SELECT key, key_values FROM key_versions WHERE collector = ? AND scope = ? AND key > ? ORDER BY key LIMIT ?');
  }

  /** Inside the caller's transaction. */
  write(collector: string, input: KeyVersionsInput): void {
    for (const [key, version, keyValues] of input.set) this.upsert.run(collector, input.scope, key, version, keyValues ?? null);
    for (const key of input.delete ?? []) this.remove.run(collector, input.scope, key);
  }

  /** Keys after `after` in key order (paging through a scope), with their values as stored. */
  keys(collector: string, scope: string, after: string, limit: number): StoredKey[] {
    return this.page.all(collector, scope, after, limit).map((r) => ({ key: r.key, values: r.key_values }));
  }

  get(collector: string, scope: string, keys: readonly string[]): Map<string, string> {
    const found = new Map<string, string>();
    for (let i = 0; i < keys.length; i += LOOKUP_CHUNK) {
      const part = keys.slice(i, i + LOOKUP_CHUNK);
      for (const r of this.lookup(part.length).all(collector, scope, ...part)) found.set(r.key, r.version);
    }
    return found;
  }

  size(collector: string, scope: string): number {
    return this.count.get(collector, scope)?.n ?? 0;
  }

  private lookup(n: number): Statement<unknown[], { key: string; version: string }> {
    let s = this.lookups.get(n);
    if (!s) {
      s = this.db.prepare(`SELECT key, version FROM key_versions WHERE collector = ? AND scope = ? AND key IN (${Array(n).fill('?').join(', ')})`);
      this.lookups.set(n, s);
    }
    return s;
  }
}
