/**
 * `edge-agent sql test` for the `logical:` block (PostgreSQL logical decoding): the decisions as pure
 * functions, the machine's shared PostgreSQL (wal_level is not logical there: a FAIL with the
 * ALTER SYSTEM), and the test's own cluster with wal_level=logical (all good; a user without
 * REPLICATION; a table without a primary key; an invalidated slot; a publication missing a table).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { checkLogical, exitCode, formatResults, SLOT_LAG_WARN_BYTES, testSqlCollector, type CheckResult } from '../../../../agent/collectors/sql/check.js';
import type { LogicalInfo } from '../../../../agent/databases/dialect.js';
import { sqlSchema, type SqlConfig } from '../../../../agent/collectors/sql/schema.js';
import { runCli } from '../../../helpers/cli.js';
import { useLogicalCluster } from '../../../helpers/pg-cluster.js';
import { waitFor } from '../../../helpers/net.js';
import { createTestDatabase } from '../../../helpers/sql-databases.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const line = (r: CheckResult) => `${r.level} ${r.subject} ${r.message}${r.fix ? ` fix: ${r.fix}` : ''}`;
const fails = (rs: CheckResult[]) => rs.filter((r) => r.level === 'FAIL');

function logicalConfig(connection: Record<string, unknown>, tables: Record<string, unknown>[] = [{ table: 'orders' }], name = 'erp'): SqlConfig {
  return sqlSchema.parse({ type: 'sql', name, driver: 'pg', connection: { connect_timeout: '5s', ...connection }, logical: { tables } });
}

describe('sql test, logical: the decisions (pure)', () => {
  const tables = logicalConfig({ database: 'd', user: 'u' }).logical!.tables;
  const ctx = { collector: 'erp', identity: { user: 'erp_edge', database: 'd', server: 'PostgreSQL 15' }, slot: 'erp_edge_erp', publication: 'erp_edge_erp' };
  const info = (over: Partial<LogicalInfo> = {}): LogicalInfo => ({
    walLevel: 'logical',
    maxReplicationSlots: 10,
    slotsInUse: 0,
    maxSlotWalKeepSize: '10240MB',
    superuser: false,
    replication: true,
    canCreateInDatabase: true,
    database: 'd',
    slot: null,
    publication: null,
    tables: [
      {
        schema: 'public',
        name: 'orders',
        exists: true,
        canSelect: true,
        schemaUsage: true,
        columns: [{ name: 'id', type: 'int4', fullType: 'integer', nullable: false }],
        primaryKey: ['id'],
        uniqueIndexes: [],
        indexes: [['id']],
        replicaIdentity: 'd',
        isOwner: true,
        owner: 'erp_edge',
      },
    ],
    ...over,
  });
  const slot = (over: Partial<NonNullable<LogicalInfo['slot']>> = {}): LogicalInfo['slot'] => ({ plugin: 'pgoutput', slotType: 'logical', database: 'd', walStatus: 'reserved', lagBytes: 1000, active: false, ...over });

  it('all good: only ok', () => {
    const r = checkLogical(tables, info(), ctx);
    expect(r.map((x) => x.level), formatResults(r)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok', 'ok', 'ok']);
  });

  it('wal_level replica FAILs with ALTER SYSTEM and a restart', () => {
    const f = fails(checkLogical(tables, info({ walLevel: 'replica' }), ctx));
    expect(f.map(line)).toEqual([expect.stringMatching(/^FAIL server wal_level is replica, not logical: .* fix: as a superuser: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL/)]);
  });

  it('no free slot FAILs; the last free one is a warning; an existing slot needs none', () => {
    expect(fails(checkLogical(tables, info({ maxReplicationSlots: 2, slotsInUse: 2 }), ctx)).map((x) => x.fix)).toEqual([expect.stringContaining('ALTER SYSTEM SET max_replication_slots = 4;')]);
    expect(checkLogical(tables, info({ maxReplicationSlots: 2, slotsInUse: 1 }), ctx).filter((x) => x.level === 'warn').map((x) => x.message)).toEqual([expect.stringContaining('takes the last free one')]);
    expect(fails(checkLogical(tables, info({ maxReplicationSlots: 2, slotsInUse: 2, slot: slot() }), ctx))).toEqual([]);
  });

  it('a role without REPLICATION FAILs with ALTER ROLE; one that cannot create the publication FAILs with the CREATE PUBLICATION for the DBA', () => {
    const t = info().tables[0]!;
    const r = fails(checkLogical(tables, info({ replication: false, canCreateInDatabase: false, tables: [{ ...t, isOwner: false, owner: 'erp_owner' }] }), ctx));
    expect(r.map((x) => [x.subject, x.fix])).toEqual([
      ['role erp_edge', 'as a superuser: ALTER ROLE erp_edge REPLICATION;'],
      ['publication erp_edge_erp', "as the tables' owner or a superuser: CREATE PUBLICATION erp_edge_erp FOR TABLE public.orders;"],
    ]);
    expect(r[1]!.message).toContain('needs CREATE on database d and ownership of public.orders (owned by erp_owner)');
  });

  it('no primary key under REPLICA IDENTITY DEFAULT, or NOTHING, FAILs; FULL or an index is ok (FULL without a key FAILs for an initial snapshot)', () => {
    const t = info().tables[0]!;
    const noPk = fails(checkLogical(tables, info({ tables: [{ ...t, primaryKey: [] }] }), ctx));
    expect(noPk.map((x) => x.fix)).toEqual(['ALTER TABLE public.orders REPLICA IDENTITY FULL; -- or add a primary key: ALTER TABLE public.orders ADD PRIMARY KEY (<key columns>);']);
    expect(fails(checkLogical(tables, info({ tables: [{ ...t, replicaIdentity: 'n' }] }), ctx)).map((x) => x.message)).toEqual([expect.stringContaining('REPLICA IDENTITY NOTHING')]);
    // FULL decodes without a primary key; an initial snapshot then needs a configured key (or initial: none).
    expect(fails(checkLogical(tables, info({ tables: [{ ...t, primaryKey: [], replicaIdentity: 'f' }] }), ctx)).map((x) => x.message)).toEqual([expect.stringContaining('initial: snapshot needs a key')]);
    const keyed = logicalConfig({ database: 'd', user: 'u' }, [{ table: 'orders', key: ['id'] }]).logical!.tables;
    const changesOnly = logicalConfig({ database: 'd', user: 'u' }, [{ table: 'orders', initial: 'none' }]).logical!.tables;
    expect(fails(checkLogical(keyed, info({ tables: [{ ...t, primaryKey: [], replicaIdentity: 'f' }] }), ctx))).toEqual([]);
    expect(fails(checkLogical(changesOnly, info({ tables: [{ ...t, primaryKey: [], replicaIdentity: 'f' }] }), ctx))).toEqual([]);
    expect(fails(checkLogical(tables, info({ tables: [{ ...t, replicaIdentity: 'i' }] }), ctx))).toEqual([]);
  });

  it('slot: lost FAILs, another plugin or database FAILs, a lag over 1 GB warns recommending max_slot_wal_keep_size', () => {
    expect(fails(checkLogical(tables, info({ slot: slot({ walStatus: 'lost' }) }), ctx)).map((x) => x.message)).toEqual([expect.stringContaining('invalidated by the server (wal_status lost)')]);
    expect(fails(checkLogical(tables, info({ slot: slot({ plugin: 'test_decoding' }) }), ctx)).map((x) => x.message)).toEqual([expect.stringContaining('with plugin test_decoding, not a logical slot with pgoutput')]);
    expect(fails(checkLogical(tables, info({ slot: slot({ database: 'other' }) }), ctx)).map((x) => x.message)).toEqual([expect.stringContaining('belongs to database other, not d')]);
    const lagging = checkLogical(tables, info({ maxSlotWalKeepSize: '-1', slot: slot({ lagBytes: SLOT_LAG_WARN_BYTES * 3 }) }), ctx).filter((x) => x.level === 'warn');
    expect(lagging.map(line)).toEqual([expect.stringMatching(/^warn slot erp_edge_erp holds back 3\.0 GB of WAL .* fix: as a superuser: ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf\(\);/)]);
    expect(checkLogical(tables, info({ slot: slot({ lagBytes: SLOT_LAG_WARN_BYTES - 1 }) }), ctx).every((x) => x.level === 'ok')).toBe(true);
  });

  it('publication: a missing table warns with ALTER PUBLICATION (FAILs when the user may not add it); a publication without delete warns', () => {
    const pub = { owner: 'erp_edge', isOwner: true, allTables: false, insert: true, update: true, delete: true, truncate: true, tables: [] };
    const w = checkLogical(tables, info({ publication: pub }), ctx).filter((x) => x.level !== 'ok');
    expect(w.map((x) => [x.level, x.fix])).toEqual([['warn', 'ALTER PUBLICATION erp_edge_erp ADD TABLE public.orders;']]);
    expect(fails(checkLogical(tables, info({ publication: { ...pub, owner: 'dba', isOwner: false } }), ctx)).map((x) => x.fix)).toEqual(['as the owner or a superuser: ALTER PUBLICATION erp_edge_erp ADD TABLE public.orders;']);
    expect(checkLogical(tables, info({ publication: { ...pub, tables: ['public.orders'], delete: false } }), ctx).filter((x) => x.level !== 'ok').map((x) => x.message)).toEqual([expect.stringContaining('does not publish delete')]);
  });
});

describe('sql test, logical, on the shared PostgreSQL', () => {
  it('wal_level as the server has it: not logical → FAIL with ALTER SYSTEM SET wal_level = logical', async () => {
    const db = await createTestDatabase('pg');
    try {
      await db.exec('CREATE TABLE orders (id int PRIMARY KEY, status text)');
      const c = new pg.Client(db.connection);
      await c.connect();
      const walLevel = (await c.query<{ wal_level: string }>('SHOW wal_level')).rows[0]!.wal_level;
      await c.end();
      const r = await testSqlCollector(logicalConfig(db.connection));
      const wal = r.find((x) => x.subject === 'server' && x.message.startsWith('wal_level'))!;
      if (walLevel === 'logical') {
        expect(wal.level).toBe('ok');
      } else {
        expect(line(wal)).toBe(`FAIL server wal_level is ${walLevel}, not logical: the server writes no WAL that logical decoding can read, so no replication slot can be created or read fix: as a superuser: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (a reload is not enough)`);
        expect(exitCode(r)).toBe(1);
      }
      process.stderr.write(`--- sql test, logical, shared PostgreSQL (wal_level ${walLevel})\n${formatResults(r)}`);
    } finally {
      await db.drop();
    }
  });
});

describe('sql test, logical, on the own cluster (wal_level=logical)', () => {
  const own = useLogicalCluster();
  const { exec, withClient } = own;
  let n = 0;
  async function database(...ddl: string[]): Promise<string> {
    const name = `check_logical_${++n}`;
    await exec('postgres', `CREATE DATABASE ${name}`);
    await exec(name, 'CREATE TABLE orders (id int PRIMARY KEY, status text)', ...ddl);
    return name;
  }
  const conn = (database: string, over: Record<string, unknown> = {}) => ({ ...own.cluster.connection, database, ...over });

  it('all good, before and after the slot and publication exist: exit 0', async () => {
    const db = await database();
    const before = await testSqlCollector(logicalConfig(conn(db)));
    expect(fails(before), formatResults(before)).toEqual([]);
    expect(before.map(line)).toEqual(
      expect.arrayContaining([
        'ok server wal_level is logical',
        'ok server max_replication_slots 4, 0 in use: a slot is free for erp_edge_erp',
        'ok role postgres postgres is a superuser (may create and read the slot and the publication)',
        'ok public.orders replica identity: the primary key (id)',
        'ok slot erp_edge_erp does not exist yet: the agent creates it (pgoutput) on start; capture begins there',
      ]),
    );
    expect(exitCode(before)).toBe(0);

    await exec(db, 'CREATE PUBLICATION erp_edge_erp FOR TABLE orders', `SELECT pg_create_logical_replication_slot('erp_edge_erp', 'pgoutput')`, `INSERT INTO orders VALUES (1, 'new')`);
    const after = await testSqlCollector(logicalConfig(conn(db)));
    expect(fails(after), formatResults(after)).toEqual([]);
    expect(after.map(line)).toEqual(expect.arrayContaining([expect.stringMatching(/^ok slot erp_edge_erp pgoutput, wal_status reserved, lag \d+/), 'ok publication erp_edge_erp publishes public.orders']));
    expect(exitCode(after)).toBe(0);
    process.stderr.write(`--- sql test, logical, all good (slot and publication exist)\n${formatResults(after)}`);
  });

  it('a user without REPLICATION FAILs with ALTER ROLE, and one not owning the tables with the CREATE PUBLICATION for the DBA', async () => {
    const db = await database();
    await exec('postgres', 'CREATE ROLE plain_reader LOGIN');
    await exec(db, 'GRANT SELECT ON orders TO plain_reader');
    const r = await testSqlCollector(logicalConfig(conn(db, { user: 'plain_reader' })));
    expect(fails(r).map((x) => [x.subject, x.fix]), formatResults(r)).toEqual([
      ['role plain_reader', 'as a superuser: ALTER ROLE plain_reader REPLICATION;'],
      ['publication erp_edge_erp', "as the tables' owner or a superuser: CREATE PUBLICATION erp_edge_erp FOR TABLE public.orders;"],
    ]);
    expect(fails(r)[1]!.message).toContain('ownership of public.orders (owned by postgres)');
    expect(exitCode(r)).toBe(1);

    // Fixed as told (the DBA creates the publication): nothing FAILs.
    await exec('postgres', 'ALTER ROLE plain_reader REPLICATION');
    await exec(db, 'CREATE PUBLICATION erp_edge_erp FOR TABLE public.orders');
    const fixed = await testSqlCollector(logicalConfig(conn(db, { user: 'plain_reader' })));
    expect(fails(fixed), formatResults(fixed)).toEqual([]);
    expect(fixed.map(line)).toContain('ok role plain_reader plain_reader has REPLICATION (may create and read the slot)');
  });

  it('a table without a primary key FAILs with REPLICA IDENTITY FULL; a missing table FAILs', async () => {
    const db = await database('CREATE TABLE audit_log (at timestamptz, note text)');
    const r = await testSqlCollector(logicalConfig(conn(db), [{ table: 'orders' }, { table: 'audit_log' }, { table: 'Orders_Missing' }]));
    expect(fails(r).map((x) => [x.subject, x.fix]), formatResults(r)).toEqual([
      ['public.audit_log', 'ALTER TABLE public.audit_log REPLICA IDENTITY FULL; -- or add a primary key: ALTER TABLE public.audit_log ADD PRIMARY KEY (<key columns>);'],
      ['public.Orders_Missing', expect.stringContaining('correct `table: Orders_Missing` under logical.tables')],
    ]);
    expect(fails(r)[0]!.message).toContain('the server refuses UPDATE and DELETE on it');

    await exec(db, 'ALTER TABLE public.audit_log REPLICA IDENTITY FULL');
    // Decodable now; but its initial snapshot has no key to page by.
    const noKey = await testSqlCollector(logicalConfig(conn(db), [{ table: 'orders' }, { table: 'audit_log' }]));
    expect(fails(noKey).map((x) => [x.subject, x.message]), formatResults(noKey)).toEqual([['public.audit_log', expect.stringContaining('initial: snapshot needs a key to page the rows by')]]);
    expect(fails(noKey)[0]!.fix).toContain('`initial: none`');
    const fixed = await testSqlCollector(logicalConfig(conn(db), [{ table: 'orders' }, { table: 'audit_log', initial: 'none' }]));
    expect(fails(fixed), formatResults(fixed)).toEqual([]);
  });

  it('a publication missing a configured table warns with ALTER PUBLICATION … ADD TABLE (exit 0: the agent adds it)', async () => {
    const db = await database('CREATE TABLE order_lines (order_id int, line int, PRIMARY KEY (order_id, line))');
    await exec(db, 'CREATE PUBLICATION erp_edge_erp FOR TABLE orders');
    const r = await testSqlCollector(logicalConfig(conn(db), [{ table: 'orders' }, { table: 'public.order_lines' }]));
    expect(r.filter((x) => x.subject === 'publication erp_edge_erp').map(line)).toEqual([
      'warn publication erp_edge_erp does not publish public.order_lines: the agent adds it on start; changes made before that are not captured fix: ALTER PUBLICATION erp_edge_erp ADD TABLE public.order_lines;',
    ]);
    expect(exitCode(r)).toBe(0);
  });

  it('a slot the server invalidated (past max_slot_wal_keep_size) FAILs', async () => {
    const db = await database();
    await exec(db, `SELECT pg_create_logical_replication_slot('erp_edge_lost', 'pgoutput')`);
    const cfg = logicalConfig(conn(db), [{ table: 'orders' }], 'lost');
    expect(fails(await testSqlCollector(cfg))).toEqual([]);
    await exec('postgres', `ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'`, 'SELECT pg_reload_conf()');
    try {
      await waitFor('the slot invalidated', async () => {
        await exec(db, `INSERT INTO orders SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g ON CONFLICT (id) DO UPDATE SET status = excluded.status || 'y'`, 'SELECT pg_switch_wal()', 'CHECKPOINT');
        return withClient(db, async (c) => (await c.query<{ s: string }>(`SELECT wal_status AS s FROM pg_replication_slots WHERE slot_name = 'erp_edge_lost'`)).rows[0]?.s === 'lost');
      }, 30_000);
    } finally {
      await exec('postgres', 'ALTER SYSTEM RESET max_slot_wal_keep_size', 'SELECT pg_reload_conf()');
    }
    const r = await testSqlCollector(cfg);
    expect(fails(r).map(line), formatResults(r)).toEqual([expect.stringMatching(/^FAIL slot erp_edge_lost invalidated by the server \(wal_status lost\): .* fix: start the agent: it drops the slot, creates a new one and appends a gap record naming it \(or drop it now: SELECT pg_drop_replication_slot\('erp_edge_lost'\);\)/)]);
    expect(exitCode(r)).toBe(1);
  }, 90_000);

  it('through the CLI: exit 1 and the fixes printed, for a user without REPLICATION and a table without a key', async () => {
    const tmp = makeTempDir('sql-check-logical-');
    try {
      const cfgPath = join(tmp.dir, 'agent.yaml');
      writeFileSync(
        cfgPath,
        `site: s1
agent: a1
data_dir: ./data
transport: { url: "mqtt://127.0.0.1:1883" }
collectors:
  - type: sql
    name: erp
    driver: pg
    connection: { host: 127.0.0.1, port: ${own.cluster.port}, database: cli_db, user: cli_reader, password: "" }
    logical:
      tables:
        - table: orders
        - table: audit_log
`,
      );
      await exec('postgres', 'CREATE DATABASE cli_db', 'CREATE ROLE cli_reader LOGIN');
      await exec('cli_db', 'CREATE TABLE orders (id int PRIMARY KEY)', 'CREATE TABLE audit_log (at timestamptz, note text)', 'GRANT SELECT ON orders, audit_log TO cli_reader');
      const r = runCli('edge-agent', ['sql', 'test', '--config', cfgPath]);
      expect(r.status, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toContain('FAIL  erp  role cli_reader  cli_reader has neither REPLICATION nor superuser');
      expect(r.stdout).toContain('fix: as a superuser: ALTER ROLE cli_reader REPLICATION;');
      expect(r.stdout).toContain('FAIL  erp  public.audit_log  no primary key and REPLICA IDENTITY DEFAULT');
      expect(r.stdout).toMatch(/^\d+ FAIL, \d+ warn, \d+ ok$/m);
      process.stderr.write(`--- edge-agent sql test (logical), exit ${r.status}\n${r.stdout}`);
    } finally {
      tmp.cleanup();
    }
  });
});
