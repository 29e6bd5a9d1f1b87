import { connectFailure, describeConnection, errorText, type CheckResult } from './check.js';
import { captureInstanceStatement, prerequisitesStatement, tableAccessStatement } from '../../databases/dialects/mssql-metadata.js';
import { quoteIdent } from '../../databases/dialects/mssql-statements.js';
import type { MssqlConnectOptions, MssqlRunner } from '../../databases/mssql-runner.js';
import { captureInstanceOf, mssqlTables, type MssqlTableConfig, type SqlConfig } from './schema.js';

/**
 * `edge-agent sql test` for driver: mssql: connectivity, then each mode's prerequisites (Change
 * Tracking on the database and the table, ALLOW_SNAPSHOT_ISOLATION, SELECT and VIEW CHANGE
 * TRACKING, the rowversion column, CDC on the database and the capture instance readable), each
 * failing line with the statement that fixes it. The checks run against the MssqlRunner
 * interface, so they are tested with the fake server.
 */

type Connect = (opts: MssqlConnectOptions) => Promise<MssqlRunner>;

const realConnect: Connect = async (opts) => (await import('../../databases/dialects/mssql.js')).connect(opts);

/** Connects as the collector would, checks, and closes. Never throws for a database problem. */
export async function testMssqlCollector(cfg: SqlConfig, connect: Connect = realConnect): Promise<CheckResult[]> {
  const c = cfg.connection;
  let runner: MssqlRunner;
  try {
    runner = await connect({ host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, poolSize: 1, connectTimeoutMs: c.connect_timeout, encrypt: c.encrypt, trustServerCertificate: c.trust_server_certificate });
  } catch (err) {
    return [connectFailure(cfg, err)];
  }
  try {
    return await checkMssql(cfg, runner);
  } catch (err) {
    return [{ level: 'FAIL', collector: cfg.name, subject: 'connect', message: `connected to ${describeConnection(cfg)}, then: ${errorText(err, c.password)}` }];
  } finally {
    await runner.close().catch(() => undefined); // closing after a check changes no result
  }
}

/** A name as a fix statement writes it: plain when it is a plain word, else bracket-quoted. */
function name(n: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(n) ? n : quoteIdent(n);
}
const tableName = (t: string) => t.split('.').map(name).join('.');
const literal = (s: string) => `N'${s.replaceAll("'", "''")}'`;

export async function checkMssql(cfg: SqlConfig, runner: MssqlRunner): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const add = (level: CheckResult['level'], subject: string, message: string, fix?: string) => out.push({ level, collector: cfg.name, subject, message, ...(fix ? { fix } : {}) });
  const p = (await runner.query(prerequisitesStatement()))[0] ?? {};
  const user = String(p.db_user ?? cfg.connection.user);
  const db = String(p.db ?? cfg.connection.database);
  add('ok', 'connect', `${describeConnection(cfg)} (mssql): SQL Server ${String(p.server)}, as ${String(p.login)} (database user ${user})`);
  const tables = mssqlTables(cfg);
  const uses = (mode: MssqlTableConfig['mode']) => tables.some((t) => t.mode === mode);
  if (uses('change_tracking')) {
    if (Number(p.ct_enabled) === 1) add('ok', `database ${db}`, 'change tracking is enabled');
    else add('FAIL', `database ${db}`, 'change tracking is not enabled on the database (mode change_tracking needs it)', `ALTER DATABASE ${name(db)} SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON);`);
    if (Number(p.snapshot_isolation) === 1) add('ok', `database ${db}`, 'snapshot isolation is allowed');
    else add('FAIL', `database ${db}`, 'ALLOW_SNAPSHOT_ISOLATION is off: change tracking reads its versions and changes in one snapshot transaction', `ALTER DATABASE ${name(db)} SET ALLOW_SNAPSHOT_ISOLATION ON;`);
  }
  if (uses('cdc')) {
    if (Number(p.cdc_enabled) === 1) add('ok', `database ${db}`, 'CDC is enabled');
    else add('FAIL', `database ${db}`, 'CDC is not enabled on the database (mode cdc needs it, and SQL Server Agent running its capture job)', 'as sysadmin: EXEC sys.sp_cdc_enable_db;');
  }
  for (const t of tables) {
    try {
      out.push(...(await checkTable(cfg.name, t, runner, user)));
    } catch (err) {
      add('FAIL', t.table, `could not inspect the table: ${errorText(err, cfg.connection.password)}`);
    }
  }
  return out;
}

async function checkTable(collector: string, t: MssqlTableConfig, runner: MssqlRunner, user: string): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  const fail = (message: string, fix: string) => out.push({ level: 'FAIL', collector, subject: t.table, message, fix });
  const tn = tableName(t.table);
  const grantSelect = `GRANT SELECT ON ${tn} TO ${name(user)};`;
  const a = (await runner.query(tableAccessStatement(t.table)))[0] ?? {};
  if (a.object_id === null || a.object_id === undefined) {
    fail('table not found, or this login cannot see it', `correct \`table: ${t.table}\` in the config (schema-qualify it: dbo.${t.table.split('.').at(-1)}), or: ${grantSelect}`);
    return out;
  }
  if (Number(a.can_select) !== 1) fail(`user ${user} cannot SELECT from it`, grantSelect);
  const columns = await runner.columns(t.table);
  const primaryKey = await runner.primaryKey(t.table);
  const key = t.key ?? primaryKey;
  if (key.length === 0) fail('no primary key, and no key: in the config: records need a key', 'name its unique, not-null columns in the config: key: [col, ...]');
  const missing = key.filter((k) => !columns.some((c) => c.name === k));
  if (missing.length > 0) fail(`key column(s) ${missing.join(', ')} not in the table`, `correct key: in the config (the table's columns: ${columns.map((c) => c.name).join(', ')})`);
  switch (t.mode) {
    case 'change_tracking':
      if (primaryKey.length > 0 && t.key && t.key.join('\u0000') !== primaryKey.join('\u0000')) fail(`change tracking identifies rows by the primary key (${primaryKey.join(', ')}), not key: [${t.key.join(', ')}]`, `remove key: from the config, or set key: [${primaryKey.join(', ')}]`);
      if (primaryKey.length === 0) fail('change tracking needs a primary key on the table', `ALTER TABLE ${tn} ADD CONSTRAINT ${name(`PK_${t.table.split('.').at(-1)}`)} PRIMARY KEY (${key.map(name).join(', ') || '<columns>'});`);
      if (Number(a.ct_enabled) !== 1) fail('change tracking is not enabled on the table', `ALTER TABLE ${tn} ENABLE CHANGE_TRACKING;`);
      if (Number(a.can_view_ct) !== 1) fail(`user ${user} has no VIEW CHANGE TRACKING on it`, `GRANT VIEW CHANGE TRACKING ON ${tn} TO ${name(user)};`);
      break;
    case 'rowversion': {
      const col = columns.find((c) => c.name === t.rowversion_column);
      if (!col) fail(`rowversion column ${t.rowversion_column} not in the table`, `ALTER TABLE ${tn} ADD ${name(t.rowversion_column)} rowversion;`);
      else if (!/^(timestamp|rowversion)$/i.test(col.type)) fail(`column ${col.name} is ${col.type}, not rowversion`, `set rowversion_column: to the table's rowversion column, or: ALTER TABLE ${tn} ADD erp_rv rowversion;`);
      break;
    }
    case 'cdc': {
      const instance = captureInstanceOf(t);
      const r = (await runner.query(captureInstanceStatement(instance)))[0] ?? {};
      const min = r.min_lsn;
      const none = min === null || min === undefined || (min instanceof Uint8Array && min.every((b) => b === 0));
      if (none) {
        const [schema, table] = t.table.includes('.') ? t.table.split('.') : ['dbo', t.table];
        fail(
          `CDC capture instance ${instance} does not exist, or user ${user} may not read it (not in its gating role)`,
          `as db_owner: EXEC sys.sp_cdc_enable_table @source_schema = ${literal(schema!)}, @source_name = ${literal(table!)}, @role_name = N'erp_edge_cdc', @capture_instance = ${literal(instance)}; ALTER ROLE erp_edge_cdc ADD MEMBER ${name(user)}; -- if it exists: add ${user} to its gating role`,
        );
      }
      break;
    }
  }
  if (out.length === 0) out.push({ level: 'ok', collector, subject: t.table, message: `mode ${t.mode}: ready (key ${key.join(', ')})` });
  return out;
}
