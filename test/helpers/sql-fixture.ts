import path from 'node:path';
import type { SqlSource } from '../../agent/databases/dialect.js';
import { Outbox } from '../../agent/outbox/outbox.js';
import { testOutboxOptions } from './outbox.js';
import { createTestDatabase, type TestDatabase } from './sql-databases.js';
import { makeTempDir } from './tmp.js';

/** What a SQL collector test stands on: a temp database, a temp folder with an outbox, the driver's source on the database. */
export interface SqlFixture {
  db: TestDatabase;
  tmp: ReturnType<typeof makeTempDir>;
  outbox: Outbox;
  source: SqlSource;
}

/** Opens a fixture, running `statements` (the test's tables and rows) in the new database first. */
export async function openSqlFixture(driver: 'pg' | 'mysql', statements: readonly string[], prefix: string): Promise<SqlFixture> {
  const db = await createTestDatabase(driver);
  for (const s of statements) await db.exec(s);
  const tmp = makeTempDir(prefix);
  const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
  const dialect = driver === 'pg' ? await import('../../agent/databases/dialects/pg.js') : await import('../../agent/databases/dialects/mysql.js');
  const source = await dialect.connect({ ...db.connection, poolSize: 2, connectTimeoutMs: 5_000 });
  return { db, tmp, outbox, source };
}

export async function closeSqlFixture(f: Partial<SqlFixture>): Promise<void> {
  await f.source?.close();
  f.outbox?.close();
  await f.db?.drop();
  f.tmp?.cleanup();
}
