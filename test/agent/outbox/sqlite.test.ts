import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openSqlite, sqliteBinding, type SqliteDb } from '../../../agent/outbox/sqlite.js';
import { isDiskFull } from '../../../agent/outbox/outbox.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { ErpEdgeError } from '../../../common/errors.js';

// The storage seam's contract, whichever binding runs it: this file is part of the outbox suite
// that runs twice, on better-sqlite3 (the machine's Node) and on node:sqlite (node-sqlite.test.ts
// runs it under Node 22 with ERP_EDGE_SQLITE=node:sqlite).
const { dir, cleanup } = makeTempDir('erp-edge-sqlite-');
let n = 0;
const opened: SqliteDb[] = [];
function fresh(): { db: SqliteDb; path: string } {
  const path = join(dir, `s${++n}.db`);
  const db = openSqlite(path);
  opened.push(db);
  db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB)');
  return { db, path };
}
afterEach(() => {
  for (const db of opened.splice(0)) db.close();
});
afterAll(() => cleanup());

const rows = (db: SqliteDb) => db.prepare<[], { k: number; v: string }>('SELECT k, v FROM t ORDER BY k').all().map((r) => [r.k, r.v]);

describe(`SQLite seam (${sqliteBinding()})`, () => {
  it('runs on the binding the run asked for', () => {
    expect(sqliteBinding()).toBe(process.env.ERP_EDGE_SQLITE ?? 'better-sqlite3');
    if (sqliteBinding() === 'node:sqlite') expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(22);
  });

  it('binds and reads back numbers, text and bytes; iterates in order', () => {
    const { db } = fresh();
    const insert = db.prepare<[number, string, Uint8Array | null], never>('INSERT INTO t (k, v, b) VALUES (?, ?, ?)');
    expect(Number(insert.run(7, 'seven', Buffer.from([1, 2, 3])).lastInsertRowid)).toBe(7);
    insert.run(2 ** 40, 'big', null);
    const got = db.prepare<[number], { k: number; v: string; b: Uint8Array | null }>('SELECT * FROM t WHERE k = ?').get(7)!;
    expect([got.k, got.v, [...got.b!]]).toEqual([7, 'seven', [1, 2, 3]]);
    expect(db.prepare('SELECT * FROM t WHERE k = ?').get(8)).toBeUndefined();
    expect([...db.prepare<[], { k: number }>('SELECT k FROM t ORDER BY k DESC').iterate()].map((r) => r.k)).toEqual([2 ** 40, 7]);
  });

  it('commits a transaction, rolls it back when it throws, and nests as a savepoint', () => {
    const { db } = fresh();
    const insert = db.prepare<[number, string], never>('INSERT INTO t (k, v) VALUES (?, ?)');
    expect(db.transaction(() => (insert.run(1, 'a'), 'done'))()).toBe('done');
    expect(() => db.transaction(() => {
      insert.run(2, 'b');
      throw new Error('boom');
    })()).toThrow('boom');
    db.transaction(() => {
      insert.run(3, 'c');
      expect(() => db.transaction(() => {
        insert.run(4, 'd');
        insert.run(1, 'duplicate');
      })()).toThrow();
      insert.run(5, 'e');
    })();
    expect(rows(db)).toEqual([[1, 'a'], [3, 'c'], [5, 'e']]);
    // Nothing was left open: the next transaction begins as usual.
    db.transaction(() => insert.run(6, 'f'))();
    expect(rows(db)).toHaveLength(4);
  });

  it('names errors as better-sqlite3 does (SQLITE_*), including a full disk', () => {
    const { db } = fresh();
    db.prepare('INSERT INTO t (k, v) VALUES (1, ?)').run('x');
    const codeOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        return err as { code?: string; message: string };
      }
      throw new Error('did not throw');
    };
    expect(codeOf(() => db.prepare('INSERT INTO t (k, v) VALUES (1, ?)').run('y')).code).toBe('SQLITE_CONSTRAINT_PRIMARYKEY');
    expect(codeOf(() => db.prepare('SELECT * FROM nowhere')).code).toBe('SQLITE_ERROR');
    // The file may not grow past its pages: SQLite answers SQLITE_FULL, which the outbox reads as a full disk.
    const pages = db.pragma('page_count', { simple: true }) as number;
    db.pragma(`max_page_count = ${pages}`);
    const full = codeOf(() => db.transaction(() => {
      for (let i = 2; i < 2_000; i++) db.prepare('INSERT INTO t (k, v) VALUES (?, ?)').run(i, 'y'.repeat(1_000));
    })());
    expect(full.code).toBe('SQLITE_FULL');
    expect(isDiskFull(full)).toBe(true);
    expect(rows(db)).toEqual([[1, 'x']]);
  });

  it('runs pragmas: rows, or one value with simple', () => {
    const { db } = fresh();
    expect(db.pragma('journal_mode = WAL')).toEqual([{ journal_mode: 'wal' }]);
    db.pragma('user_version = 3');
    expect(db.pragma('user_version', { simple: true })).toBe(3);
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
  });

  it('waits for another connection\'s lock as better-sqlite3 does (busy timeout 5 s), read-only too', () => {
    const { db, path } = fresh();
    const ro = openSqlite(path, { readonly: true, fileMustExist: true });
    opened.push(ro);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5_000);
    expect(ro.pragma('busy_timeout', { simple: true })).toBe(5_000);
  });

  it('opens read-only: a missing file is refused, writes are refused', () => {
    const { db, path } = fresh();
    db.prepare("INSERT INTO t (k, v) VALUES (1, 'a')").run();
    expect(() => openSqlite(join(dir, 'missing.db'), { readonly: true, fileMustExist: true })).toThrow(expect.objectContaining({ code: 'SQLITE_CANTOPEN' }));
    const ro = openSqlite(path, { readonly: true, fileMustExist: true });
    opened.push(ro);
    expect(rows(ro)).toEqual([[1, 'a']]);
    expect(() => ro.prepare("INSERT INTO t (k, v) VALUES (2, 'b')").run()).toThrow(expect.objectContaining({ code: 'SQLITE_READONLY' }));
  });
});

describe('binding choice in an executable that carries one binding (the Windows build: node:sqlite)', () => {
  it('refuses ERP_EDGE_SQLITE=better-sqlite3 with a typed error naming the setting and what the build carries', () => {
    let err: unknown;
    try {
      sqliteBinding({ ERP_EDGE_SQLITE: 'better-sqlite3' }, 'node:sqlite');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ErpEdgeError);
    const e = err as ErpEdgeError;
    expect(e.code).toBe('ERP_OUTBOX_SQLITE');
    expect(e.message).toContain('ERP_EDGE_SQLITE=better-sqlite3');
    expect(e.message).toContain('carries only node:sqlite');
    expect(e.context).toEqual({ asked: 'better-sqlite3', carried: 'node:sqlite' });
  });

  it('uses the carried binding when unset or asked for by name', () => {
    expect(sqliteBinding({}, 'node:sqlite')).toBe('node:sqlite');
    expect(sqliteBinding({ ERP_EDGE_SQLITE: 'node:sqlite' }, 'node:sqlite')).toBe('node:sqlite');
  });
});
