import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkTable, exitCode, formatResults, recordingEnv, redactor, testSqlCollector, type CheckResult } from '../../../../agent/collectors/sql/check.js';
import type { TableInfo } from '../../../../agent/databases/dialect.js';
import { incrementalTables, sqlSchema, type SqlConfig } from '../../../../agent/collectors/sql/schema.js';
import { runCli } from '../../../helpers/cli.js';
import { createTestDatabase, type TestDatabase } from '../../../helpers/sql-databases.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const line = (r: CheckResult) => `${r.level} ${r.subject} ${r.message}${r.fix ? ` fix: ${r.fix}` : ''}`;
const levels = (rs: CheckResult[]) => rs.map((r) => r.level);

describe('sql test: the checks of one table (pure)', () => {
  const table = (t: Record<string, unknown>) => incrementalTables(sqlSchema.parse({ type: 'sql', name: 'erp', driver: 'pg', connection: { database: 'd', user: 'u' }, tables: [{ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at', ...t }] }))[0]!;
  const info = (over: Partial<TableInfo> = {}): TableInfo => ({
    schema: 'public',
    name: 'orders',
    exists: true,
    canSelect: true,
    schemaUsage: true,
    columns: [
      { name: 'id', type: 'int4', fullType: 'integer', nullable: false },
      { name: 'line', type: 'int4', fullType: 'integer', nullable: true },
      { name: 'updated_at', type: 'timestamptz', fullType: 'timestamp with time zone', precision: 6, nullable: false },
    ],
    primaryKey: ['id'],
    uniqueIndexes: [],
    indexes: [['id'], ['updated_at', 'id']],
    ...over,
  });
  const pg = { collector: 'erp', driver: 'pg' as const, identity: { user: 'erp_edge', database: 'd', server: 'PostgreSQL 15' } };
  const my = { collector: 'erp', driver: 'mysql' as const, identity: { user: 'erp', userHost: '%', database: 'd', server: 'MariaDB' } };

  it('all good: only ok', () => {
    expect(levels(checkTable(table({}), info(), pg))).toEqual(['ok', 'ok', 'ok', 'ok']);
  });

  it('a key that holds the primary key is unique; a key that does not is a warning naming the primary key', () => {
    expect(checkTable(table({ key: ['id', 'line'] }), info(), pg).map(line)).toContain('ok public.orders key (id, line) is unique (it holds the primary key id)');
    const r = checkTable(table({ key: ['line'] }), info(), pg).find((x) => x.message.startsWith('key'))!;
    expect(r.level).toBe('warn');
    expect(r.fix).toBe('use the primary key in the config: key: [id]');
  });

  it('a unique index over a nullable column is a warning; over NOT NULL columns it is ok', () => {
    expect(checkTable(table({ key: ['line'] }), info({ uniqueIndexes: [['line']] }), pg).find((x) => x.message.startsWith('key'))!.level).toBe('warn');
    const cols = info().columns.map((c) => ({ ...c, nullable: false }));
    expect(checkTable(table({ key: ['line'] }), info({ columns: cols, uniqueIndexes: [['line']] }), pg).find((x) => x.message.startsWith('key'))!.level).toBe('ok');
  });

  it('MySQL compares column names without case; PostgreSQL with', () => {
    const t = table({ key: ['ID'], version_column: 'Updated_At' });
    const mysqlCols = info().columns.map((c) => (c.name === 'updated_at' ? { ...c, type: 'datetime', fullType: 'datetime(6)' } : c));
    expect(levels(checkTable(t, info({ columns: mysqlCols }), my))).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(checkTable(t, info(), pg).filter((r) => r.level === 'FAIL').map((r) => r.message)).toEqual([expect.stringContaining('key column ID not in the table'), expect.stringContaining('version column Updated_At not in the table (its timestamp or timestamptz columns: updated_at)')]);
  });

  it('statements quote reserved and mixed-case names, and MySQL grants name the account', () => {
    const i = info({ schema: 'ERP', name: 'order', canSelect: false, indexes: [] });
    const r = checkTable(table({ table: 'ERP.order' }), i, pg);
    expect(r.find((x) => x.level === 'FAIL')!.fix).toBe('GRANT SELECT ON "ERP"."order" TO erp_edge;');
    expect(r.find((x) => x.message.startsWith('no index'))!.fix).toBe('CREATE INDEX order_updated_at_id_idx ON "ERP"."order" (updated_at, id);');
    const m = checkTable(table({ table: 'order' }), { ...i, schema: 'shop' }, { ...my, identity: { ...my.identity, user: "o'neil" } });
    expect(m.find((x) => x.level === 'FAIL')!.fix).toBe("GRANT SELECT ON shop.`order` TO 'o''neil'@'%';");
  });

  it('whole-second versions and nullable versions are warnings with the statement', () => {
    const cols = [info().columns[0]!, { name: 'updated_at', type: 'datetime', fullType: 'datetime', precision: 0, nullable: true }];
    const r = checkTable(table({}), info({ schema: 'shop', columns: cols }), my);
    expect(r.filter((x) => x.level === 'warn').map((x) => x.fix)).toEqual([
      expect.stringMatching(/^ALTER TABLE shop\.orders MODIFY updated_at DATETIME\(6\);/),
      expect.stringMatching(/^ALTER TABLE shop\.orders MODIFY updated_at DATETIME NOT NULL;/),
    ]);
  });

  it('exit code 1 only when something FAILs', () => {
    const ok: CheckResult = { level: 'ok', collector: 'c', subject: 's', message: 'm' };
    expect(exitCode([ok, { ...ok, level: 'warn' }])).toBe(0);
    expect(exitCode([ok, { ...ok, level: 'FAIL' }])).toBe(1);
  });

  it('values from ${VAR} print as the reference; a short password does not mask ordinary words', () => {
    const rec = recordingEnv({ DB_HOST: 'db7.plant.local', DB_PW: 'wrong', UNUSED: 'x' });
    void rec.env.DB_HOST;
    void rec.env.DB_PW;
    const redact = redactor(rec.used, ['wrong', 'long-enough-secret']);
    expect(redact('erp@db7.plant.local:5432/erp: wrong user or password long-enough-secret')).toBe('erp@${DB_HOST}:5432/erp: wrong user or password ***');
    expect(rec.used.has('x')).toBe(false);
  });
});

const DDL = {
  pg: [
    'CREATE TABLE orders (id int PRIMARY KEY, status text, updated_at timestamptz(6) NOT NULL)',
    'CREATE INDEX orders_updated_at_idx ON orders (updated_at, id)',
    'CREATE TABLE no_index (id int PRIMARY KEY, updated_at timestamp(3) NOT NULL)',
    'CREATE TABLE int_version (id int PRIMARY KEY, version int NOT NULL, changed_at timestamp NOT NULL)',
    'CREATE TABLE secret (id int PRIMARY KEY, updated_at timestamptz NOT NULL)',
    'CREATE INDEX ON secret (updated_at)',
    'CREATE SCHEMA erp',
    'CREATE TABLE erp.lines (order_id int, line int, updated_at timestamptz NOT NULL, PRIMARY KEY (order_id, line))',
    'CREATE INDEX ON erp.lines (updated_at)',
  ],
  mysql: [
    'CREATE TABLE orders (id int PRIMARY KEY, status varchar(10), updated_at datetime(6) NOT NULL, KEY (updated_at, id))',
    'CREATE TABLE no_index (id int PRIMARY KEY, updated_at datetime(3) NOT NULL)',
    'CREATE TABLE int_version (id int PRIMARY KEY, version int NOT NULL, changed_at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))',
    'CREATE TABLE secret (id int PRIMARY KEY, updated_at datetime(6) NOT NULL, KEY (updated_at))',
  ],
};

for (const driver of ['pg', 'mysql'] as const) {
  describe(`sql test against ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'} (real server)`, () => {
    let db: TestDatabase;
    /** A login that may read `orders` and `no_index` (and on PostgreSQL erp.lines, but not its schema) only. */
    const reader = `${'erp_edge_r'}_${randomBytes(5).toString('hex')}`;
    const readerPw = 'reader-Pw-0815';
    let tmp: ReturnType<typeof makeTempDir>;

    beforeAll(async () => {
      db = await createTestDatabase(driver);
      for (const s of DDL[driver]) await db.exec(s);
      if (driver === 'pg') {
        await db.exec(`CREATE ROLE ${reader} LOGIN PASSWORD '${readerPw}'`);
        await db.exec(`GRANT SELECT ON orders, no_index, erp.lines TO ${reader}`);
      } else {
        await db.exec(`CREATE USER '${reader}'@'%' IDENTIFIED BY '${readerPw}'`);
        await db.exec(`GRANT SELECT ON ${db.database}.orders TO '${reader}'@'%'`);
        await db.exec(`GRANT SELECT ON ${db.database}.no_index TO '${reader}'@'%'`);
      }
      tmp = makeTempDir('sql-check-');
    });

    afterAll(async () => {
      await db?.drop();
      // After the database: a role that still holds privileges in one cannot be dropped.
      if (db && driver === 'pg') {
        const pg = (await import('pg')).default;
        const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'postgres' });
        await c.connect();
        await c.query(`DROP ROLE IF EXISTS ${reader}`);
        await c.end();
      } else if (db) {
        const mysql = (await import('mysql2/promise')).default;
        const c = await mysql.createConnection({ host: '127.0.0.1', port: 3306, user: 'root', password: '' });
        await c.query(`DROP USER IF EXISTS '${reader}'@'%'`);
        await c.end();
      }
      tmp?.cleanup();
    });

    const collector = (tables: Record<string, unknown>[], connection: Record<string, unknown> = {}): SqlConfig =>
      sqlSchema.parse({ type: 'sql', name: 'erp', driver, connection: { ...db.connection, connect_timeout: '5s', ...connection }, tables: tables.map((t) => ({ table: 'orders', key: ['id'], mode: 'incremental', version_column: 'updated_at', ...t })) });
    const schema = driver === 'pg' ? 'public' : () => db.database;
    const q = (name: string) => `${typeof schema === 'string' ? schema : schema()}.${name}`;

    it('all good: connect and every check ok, exit code 0', async () => {
      const r = await testSqlCollector(collector([{}]));
      expect(r.map(line), formatResults(r)).toEqual([
        expect.stringMatching(new RegExp(`^ok connect ${driver === 'pg' ? 'postgres' : 'root'}@127\\.0\\.0\\.1:${driver === 'pg' ? 5432 : 3306}/${db.database} \\(${driver}\\): ${driver === 'pg' ? 'PostgreSQL' : 'MariaDB'}`)),
        `ok ${q('orders')} exists; ${driver === 'pg' ? 'postgres' : 'root'} can SELECT from it`,
        `ok ${q('orders')} key (id) is the primary key`,
        `ok ${q('orders')} version column updated_at is ${driver === 'pg' ? 'timestamp(6) with time zone' : 'datetime(6)'} (6 fractional digits)`,
        `ok ${q('orders')} version column updated_at is indexed (updated_at, id)`,
      ]);
      expect(exitCode(r)).toBe(0);
    });

    it('a table that does not exist FAILs naming it, and says what there is', async () => {
      const r = await testSqlCollector(collector([{ table: 'Orders' }, { table: 'nowhere.orders' }]));
      const fails = r.filter((x) => x.level === 'FAIL');
      expect(fails.map((x) => x.subject)).toEqual([q('Orders'), 'nowhere.orders']);
      expect(fails[0]!.message).toContain(`no table or view "Orders" in ${driver === 'pg' ? 'schema public' : `database ${db.database}`}; found: ${q('orders')}`);
      expect(fails[0]!.fix).toContain('correct `table: Orders` in the config');
      expect(exitCode(r)).toBe(1);
    });

    it('a version column that is missing or not a timestamp FAILs, naming the columns that would do', async () => {
      const missing = (await testSqlCollector(collector([{ version_column: 'modified_at' }]))).filter((x) => x.level === 'FAIL');
      expect(missing.map(line)).toEqual([expect.stringContaining(`FAIL ${q('orders')} version column modified_at not in the table (its `)]);
      expect(missing[0]!.message).toContain('columns: updated_at)');
      const wrong = (await testSqlCollector(collector([{ table: 'int_version', version_column: 'version' }]))).filter((x) => x.level === 'FAIL');
      expect(wrong.map(line)).toEqual([expect.stringContaining(`FAIL ${q('int_version')} version column version is ${driver === 'pg' ? 'integer' : 'int(11)'}, not a `)]);
      expect(wrong[0]!.fix).toContain('set `version_column:` to one of changed_at');
    });

    it('a version column without an index is a warning with the CREATE INDEX (no FAIL: exit 0)', async () => {
      const r = await testSqlCollector(collector([{ table: 'no_index' }]));
      const warn = r.filter((x) => x.level === 'warn');
      expect(warn.map(line)).toEqual([`warn ${q('no_index')} no index starts with version column updated_at: every poll scans the whole table fix: CREATE INDEX no_index_updated_at_id_idx ON ${q('no_index')} (updated_at, id);`]);
      expect(exitCode(r)).toBe(0);
    });

    it('a user without SELECT FAILs with the GRANT that fixes it', async () => {
      const tables = driver === 'pg' ? [{}, { table: 'secret' }, { table: 'erp.lines', key: ['order_id', 'line'] }] : [{}, { table: 'secret' }];
      const r = await testSqlCollector(collector(tables, { user: reader, password: readerPw }));
      const grantee = driver === 'pg' ? reader : `'${reader}'@'%'`;
      expect(r[0]!.level).toBe('ok'); // connected as the reader
      expect(r.filter((x) => x.subject === q('orders')).map((x) => x.level)).toEqual(['ok', 'ok', 'ok', 'ok']);
      const fails = r.filter((x) => x.level === 'FAIL');
      expect(fails.map((x) => [x.subject, x.fix])).toEqual([
        [q('secret'), `GRANT SELECT ON ${q('secret')} TO ${grantee};${driver === 'mysql' ? ' -- or, if there is no such table, correct `table: secret` in the config' : ''}`],
        ...(driver === 'pg' ? [['erp.lines', `GRANT USAGE ON SCHEMA erp TO ${reader};`]] : []),
      ]);
      expect(formatResults(r)).not.toContain(readerPw);
      expect(exitCode(r)).toBe(1);
    });

    it('a connection that fails names host:port/database and user and the driver error, never the password', async () => {
      const r = await testSqlCollector(collector([{}], { port: 1, password: 'Very-Secret-Pw' }));
      expect(r).toHaveLength(1);
      expect(r[0]!.level).toBe('FAIL');
      expect(r[0]!.message).toMatch(new RegExp(`^cannot connect to ${db.connection.user}@127\\.0\\.0\\.1:1/${db.database} \\(${driver}\\): .*ECONNREFUSED`));
      expect(r[0]!.fix).toContain('nothing listens on 127.0.0.1:1');
      expect(JSON.stringify(r)).not.toContain('Very-Secret-Pw');
      const denied = await testSqlCollector(collector([{}], { user: reader, password: 'not-the-password' }));
      if (driver === 'mysql') {
        expect(denied[0]!.fix).toBe('wrong user or password: check connection.user and connection.password');
      } else {
        // This server trusts local connections: any password is accepted.
        expect(denied[0]!.level).toBe('ok');
      }
    });

    it('through the CLI: exit 1 with FAIL lines and their fixes, 0 for a clean collector; ${VAR} values not printed', () => {
      const cfgPath = join(tmp.dir, 'agent.yaml');
      const c = db.connection;
      writeFileSync(
        cfgPath,
        `site: s1
agent: a1
data_dir: ./data
transport: { url: "mqtt://127.0.0.1:1883" }
collectors:
  - type: sql
    name: clean
    driver: ${driver}
    connection: { host: "${c.host}", port: ${c.port}, database: ${c.database}, user: ${c.user}, password: "" }
    tables:
      - { table: orders, key: [id], mode: incremental, version_column: updated_at }
  - type: sql
    name: erp
    driver: ${driver}
    connection: { host: "${c.host}", port: ${c.port}, database: ${c.database}, user: "\${ERP_DB_USER}", password: "\${ERP_DB_PASSWORD}" }
    tables:
      - { table: orders, key: [id], mode: incremental, version_column: updated_at }
      - { table: secret, key: [id], mode: incremental, version_column: updated_at }
      - { table: missing_table, key: [id], mode: incremental, version_column: updated_at }
      - { table: no_index, key: [id], mode: incremental, version_column: updated_at }
`,
      );
      const env = { ERP_DB_USER: reader, ERP_DB_PASSWORD: readerPw };
      const all = runCli('edge-agent', ['sql', 'test', '--config', cfgPath], env);
      expect(all.status, all.stdout + all.stderr).toBe(1);
      const out = all.stdout;
      const who = driver === 'pg' ? '${ERP_DB_USER}' : "'${ERP_DB_USER}'@'%'";
      expect(out).toContain(`FAIL  erp  ${q('secret')}  `);
      expect(out).toContain(`fix: GRANT SELECT ON ${q('secret')} TO ${who};`);
      expect(out).toMatch(new RegExp(`FAIL  erp  ${q('missing_table')}  `));
      expect(out).toContain(`warn  erp  ${q('no_index')}  no index starts with version column updated_at`);
      expect(out).toMatch(/^\d+ FAIL, \d+ warn, \d+ ok$/m);
      expect(out + all.stderr).not.toContain(reader);
      expect(out + all.stderr).not.toContain(readerPw);
      process.stderr.write(`--- edge-agent sql test (${driver}), exit ${all.status}\n${out}`);

      const clean = runCli('edge-agent', ['sql', 'test', '--config', cfgPath, '--collector', 'clean'], env);
      expect(clean.status, clean.stdout + clean.stderr).toBe(0);
      expect(clean.stdout.trim().split('\n').at(-1)).toBe('0 FAIL, 0 warn, 5 ok');

      expect(runCli('edge-agent', ['sql', 'test', '--config', cfgPath, '--collector', 'nope'], env).status).toBe(2);
      // A config error exits as `validate` does (1), with file:line:col.
      const noEnv = runCli('edge-agent', ['sql', 'test', '--config', cfgPath], { ERP_DB_USER: reader });
      expect(noEnv.status).toBe(1);
      expect(noEnv.stderr).toMatch(/agent\.yaml:\d+:\d+ .*ERP_DB_PASSWORD is not set/);
    });
  });
}
