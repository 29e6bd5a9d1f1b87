import { formatBytes } from '../../../common/format-bytes.js';
import { splitTableName, type DialectModule, type LogicalInfo, type LogicalTableInfo, type SourceIdentity, type SqlSource, type TableInfo } from '../../databases/dialect.js';
import { incrementalTables, logicalNames, logicalTableName, type LogicalTableConfig, type QueryConfig, type SqlConfig, type TableConfig } from './schema.js';

/**
 * `edge-agent sql test`: what a `sql` collector needs from its database, checked before it runs,
 * each problem with the statement (or config change) that fixes it. The inspection queries live in
 * the dialect modules (SqlSource.inspectTable); the decisions here are pure functions of what they
 * return, so they are unit-tested without a server.
 */

export type CheckLevel = 'ok' | 'warn' | 'FAIL';

export interface CheckResult {
  level: CheckLevel;
  /** The collector's name. */
  collector: string;
  /** `connect`, or the table as resolved (`public.orders`). */
  subject: string;
  message: string;
  /** The statement or config change that fixes a warn or FAIL. */
  fix?: string | undefined;
}

/** The drivers whose checks are here (SQL Server's are in mssql-check.ts). */
type Driver = Exclude<SqlConfig['driver'], 'mssql'>;

/** What the checks of one table need besides the table. */
export interface TableCheckContext {
  collector: string;
  driver: Driver;
  identity: SourceIdentity;
}

// ---------------------------------------------------------------------------------------------
// Statements

/** Words that must be quoted as names (the ones ERP tables and columns tend to be called). */
const RESERVED = new Set(
  'all and as asc by case check column constraint create default delete desc distinct do else end from grant group having in index insert into is key limit not null offset on or order primary references select table to union unique update user using when where with'.split(' '),
);

/** A name as a statement would write it: bare when it can be, quoted otherwise. */
export function sqlIdent(driver: Driver, name: string): string {
  const bare = driver === 'pg' ? /^[a-z_][a-z0-9_$]*$/ : /^[A-Za-z_][A-Za-z0-9_$]*$/;
  if (bare.test(name) && !RESERVED.has(name.toLowerCase())) return name;
  const q = driver === 'pg' ? '"' : '`';
  return q + name.replaceAll(q, q + q) + q;
}

function tableRef(driver: Driver, info: Pick<TableInfo, 'schema' | 'name'>): string {
  return info.schema ? `${sqlIdent(driver, info.schema)}.${sqlIdent(driver, info.name)}` : sqlIdent(driver, info.name);
}

/** The account a GRANT names: `erp_edge` (PostgreSQL), `'erp'@'%'` (MySQL). */
export function grantee(driver: Driver, id: Pick<SourceIdentity, 'user' | 'userHost'>): string {
  if (driver === 'pg') return sqlIdent('pg', id.user);
  const lit = (s: string) => `'${s.replaceAll("'", "''")}'`;
  return `${lit(id.user)}@${lit(id.userHost ?? '%')}`;
}

export function grantSelect(driver: Driver, info: Pick<TableInfo, 'schema' | 'name'>, id: Pick<SourceIdentity, 'user' | 'userHost'>): string {
  return `GRANT SELECT ON ${tableRef(driver, info)} TO ${grantee(driver, id)};`;
}

/** `CREATE INDEX orders_updated_at_id_idx ON public.orders (updated_at, id);` (unique: `…_key`). */
export function createIndex(driver: Driver, info: Pick<TableInfo, 'schema' | 'name'>, columns: readonly string[], unique = false): string {
  const name = `${info.name}_${columns.join('_')}_${unique ? 'key' : 'idx'}`
    .replace(/[^A-Za-z0-9_]+/g, '_')
    .slice(0, driver === 'pg' ? 63 : 64);
  return `CREATE ${unique ? 'UNIQUE ' : ''}INDEX ${sqlIdent(driver, driver === 'pg' ? name.toLowerCase() : name)} ON ${tableRef(driver, info)} (${columns.map((c) => sqlIdent(driver, c)).join(', ')});`;
}

/** A version column that every insert and update sets, with microseconds. */
export function addVersionColumn(driver: Driver, info: Pick<TableInfo, 'schema' | 'name'>, column: string): string {
  const t = tableRef(driver, info);
  const c = sqlIdent(driver, column);
  return driver === 'pg'
    ? `ALTER TABLE ${t} ADD COLUMN ${c} timestamptz(6) NOT NULL DEFAULT now(); -- and a BEFORE UPDATE trigger that sets ${c} = now()`
    : `ALTER TABLE ${t} ADD COLUMN ${c} DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6);`;
}

// ---------------------------------------------------------------------------------------------
// Checks of one table

const VERSION_TYPES: Record<Driver, ReadonlySet<string>> = {
  pg: new Set(['timestamp', 'timestamptz']),
  mysql: new Set(['datetime', 'timestamp']),
};
const TIME_WORDS: Record<Driver, string> = { pg: 'timestamp or timestamptz', mysql: 'DATETIME or TIMESTAMP' };

/** Column names: PostgreSQL's are case-sensitive once quoted (the capture quotes them), MySQL's never are. */
function sameColumn(driver: Driver, a: string, b: string): boolean {
  return driver === 'pg' ? a === b : a.toLowerCase() === b.toLowerCase();
}

const list = (cols: readonly string[]) => cols.join(', ');

export function checkTable(t: TableConfig, info: TableInfo, ctx: TableCheckContext): CheckResult[] {
  const { driver, identity } = ctx;
  const subject = info.schema ? `${info.schema}.${info.name}` : info.name;
  const out: CheckResult[] = [];
  const add = (level: CheckLevel, message: string, fix?: string) => out.push({ level, collector: ctx.collector, subject, message, ...(fix ? { fix } : {}) });

  // 1. The table, and the right to read it.
  if (info.exists === false) {
    const where = driver === 'pg' ? `schema ${info.schema}` : `database ${info.schema}`;
    const similar = info.similar?.length ? `; found: ${list(info.similar)}${driver === 'pg' ? ' (names are case-sensitive)' : ''}` : '';
    add('FAIL', `table not found: no table or view "${info.name}" in ${where}${similar}`, `correct \`table: ${t.table}\` in the config (schema-qualify it as schema.table when it is not in ${info.schema}), or create the table`);
    return out;
  }
  if (info.exists === null) {
    add('FAIL', `cannot SELECT from it, or it does not exist (without a privilege the server does not say which): ${info.selectError ?? 'access denied'}`, `${grantSelect(driver, info, identity)} -- or, if there is no such table, correct \`table: ${t.table}\` in the config`);
  } else if (info.schemaUsage === false) {
    add('FAIL', `user ${identity.user} has no USAGE on schema ${info.schema}${info.canSelect ? '' : ' and no SELECT on the table'}: no table in the schema can be read without USAGE`, `GRANT USAGE ON SCHEMA ${sqlIdent('pg', info.schema)} TO ${grantee(driver, identity)};${info.canSelect ? '' : ` ${grantSelect(driver, info, identity)}`}`);
  } else if (!info.canSelect) {
    add('FAIL', `user ${identity.user} cannot SELECT from it${info.selectError ? `: ${info.selectError}` : ''}`, grantSelect(driver, info, identity));
  } else {
    add('ok', `exists; ${identity.user} can SELECT from it`);
  }
  // Without a privilege MySQL shows no columns: nothing more can be checked until the GRANT.
  if (info.columns.length === 0) return out;

  const column = (name: string) => info.columns.find((c) => sameColumn(driver, c.name, name));
  const covers = (index: readonly string[]) => index.length > 0 && index.every((ic) => t.key.some((k) => sameColumn(driver, k, ic)));

  // 2. The key: present, and unique (the record id and key are made from it).
  const missingKey = t.key.filter((k) => !column(k));
  if (missingKey.length > 0) {
    const pk = info.primaryKey.length ? `; the primary key is (${list(info.primaryKey)})` : '';
    add('FAIL', `key column${missingKey.length > 1 ? 's' : ''} ${list(missingKey)} not in the table (its columns: ${list(info.columns.map((c) => c.name))})${pk}`, `correct \`key:\` in the config${info.primaryKey.length ? ` (key: [${list(info.primaryKey)}])` : ''}`);
  } else if (covers(info.primaryKey)) {
    add('ok', `key (${list(t.key)}) is ${info.primaryKey.length === t.key.length ? 'the primary key' : `unique (it holds the primary key ${list(info.primaryKey)})`}`);
  } else {
    const unique = info.uniqueIndexes.find(covers);
    const nullable = unique?.filter((c) => column(c)?.nullable) ?? [];
    if (unique && nullable.length === 0) {
      add('ok', `key (${list(t.key)}) is unique (unique index on ${list(unique)})`);
    } else if (unique) {
      add('warn', `key (${list(t.key)}) is unique only where ${list(nullable)} is not NULL (a unique index allows many NULLs): rows with a NULL there can share a key and record id`, info.primaryKey.length ? `use the primary key: key: [${list(info.primaryKey)}]` : undefined);
    } else {
      add(
        'warn',
        `key (${list(t.key)}) is neither the primary key nor a unique index: two rows with the same key get the same record key and can get the same record id, and one's change can be taken for the other's`,
        info.primaryKey.length ? `use the primary key in the config: key: [${list(info.primaryKey)}]` : `if the key is unique, declare it: ${createIndex(driver, info, t.key, true)}`,
      );
    }
  }

  // 3. The version column (mode incremental): a timestamp, fine-grained, set, indexed.
  const v = column(t.version_column);
  const timeColumns = info.columns.filter((c) => VERSION_TYPES[driver].has(c.type)).map((c) => c.name);
  const candidates = timeColumns.length ? ` (its ${TIME_WORDS[driver]} columns: ${list(timeColumns)})` : '';
  if (!v) {
    add('FAIL', `version column ${t.version_column} not in the table${candidates}: incremental mode reads changes in the order of a timestamp every insert and update sets`, timeColumns.length ? `set \`version_column:\` to one of ${list(timeColumns)} if every update sets it, or: ${addVersionColumn(driver, info, t.version_column)}` : addVersionColumn(driver, info, t.version_column));
    return out;
  }
  if (!VERSION_TYPES[driver].has(v.type)) {
    add('FAIL', `version column ${v.name} is ${v.fullType}, not a ${TIME_WORDS[driver]}${candidates}: incremental mode compares versions as timestamps`, timeColumns.length ? `set \`version_column:\` to one of ${list(timeColumns)} if every update sets it, or add one: ${addVersionColumn(driver, info, `${t.version_column}_ts`)}` : `add one: ${addVersionColumn(driver, info, `${t.version_column}_ts`)}`);
    return out;
  }
  if (v.precision === 0) {
    const fix =
      driver === 'pg'
        ? `ALTER TABLE ${tableRef(driver, info)} ALTER COLUMN ${sqlIdent(driver, v.name)} TYPE ${v.type}(6);`
        : `ALTER TABLE ${tableRef(driver, info)} MODIFY ${sqlIdent(driver, v.name)} ${v.type.toUpperCase()}(6)${v.nullable ? '' : ' NOT NULL'}; -- restate its DEFAULT and ON UPDATE clauses too: MODIFY replaces the whole definition`;
    add('warn', `version column ${v.name} is ${v.fullType}: whole seconds, so two updates of a row within one second have the same version and the second is taken for a re-read and not emitted`, fix);
  } else {
    add('ok', `version column ${v.name} is ${v.fullType}${v.precision !== undefined ? ` (${v.precision} fractional digits)` : ''}`);
  }
  if (v.nullable) {
    const fix =
      driver === 'pg'
        ? `ALTER TABLE ${tableRef(driver, info)} ALTER COLUMN ${sqlIdent(driver, v.name)} SET NOT NULL;`
        : `ALTER TABLE ${tableRef(driver, info)} MODIFY ${sqlIdent(driver, v.name)} ${v.fullType.toUpperCase()} NOT NULL; -- restate its DEFAULT and ON UPDATE clauses too`;
    add('warn', `version column ${v.name} allows NULL: a row whose version is NULL is loaded by the snapshot but never seen by the incremental polls`, fix);
  }
  const index = info.indexes.find((i) => i.length > 0 && sameColumn(driver, i[0]!, v.name));
  if (index) {
    add('ok', `version column ${v.name} is indexed (${list(index)})`);
  } else {
    add('warn', `no index starts with version column ${v.name}: every poll scans the whole table`, createIndex(driver, info, [v.name, ...t.key.filter((k) => !sameColumn(driver, k, v.name))]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checks of the `logical:` block (PostgreSQL logical decoding)

/** Slot lag above which `sql test` warns. */
export const SLOT_LAG_WARN_BYTES = 1024 ** 3;


export interface LogicalCheckContext {
  collector: string;
  identity: SourceIdentity;
  slot: string;
  publication: string;
}

/**
 * The `logical:` block against what inspectLogical found: the server (wal_level, a free slot), the
 * role (REPLICATION, the right to create the publication), each table (readable, a replica
 * identity), the slot if it exists (pgoutput, this database, not invalidated, its lag) and the
 * publication if it exists (covers the tables, publishes every op).
 */
export function checkLogical(tables: readonly LogicalTableConfig[], info: LogicalInfo, ctx: LogicalCheckContext): CheckResult[] {
  const out: CheckResult[] = [];
  const add = (level: CheckLevel, subject: string, message: string, fix?: string) => out.push({ level, collector: ctx.collector, subject, message, ...(fix ? { fix } : {}) });
  const user = ctx.identity.user;
  const role = sqlIdent('pg', user);
  const slotLit = `'${ctx.slot}'`;
  const pubRef = sqlIdent('pg', ctx.publication);
  const ref = (t: Pick<TableInfo, 'schema' | 'name'>) => tableRef('pg', t);
  const names = tables.map((t) => logicalTableName(t.table));
  const found = info.tables.filter((t) => t.exists === true);

  // 1. The server.
  if (info.walLevel === 'logical') add('ok', 'server', 'wal_level is logical');
  else add('FAIL', 'server', `wal_level is ${info.walLevel}, not logical: the server writes no WAL that logical decoding can read, so no replication slot can be created or read`, `as a superuser: ALTER SYSTEM SET wal_level = logical; then restart PostgreSQL (a reload is not enough)`);
  const free = info.maxReplicationSlots - info.slotsInUse;
  const raiseSlots = `as a superuser: ALTER SYSTEM SET max_replication_slots = ${Math.max(info.maxReplicationSlots + 1, info.slotsInUse + 2)}; then restart PostgreSQL, or drop a slot no longer used (SELECT pg_drop_replication_slot('name');)`;
  if (info.slot) add('ok', 'server', `max_replication_slots ${info.maxReplicationSlots}, ${info.slotsInUse} in use (slot ${ctx.slot} is one)`);
  else if (free <= 0) add('FAIL', 'server', `max_replication_slots is ${info.maxReplicationSlots} and ${info.slotsInUse} slot${info.slotsInUse === 1 ? ' is' : 's are'} in use: no slot free for ${ctx.slot}`, raiseSlots);
  else if (free === 1) add('warn', 'server', `max_replication_slots is ${info.maxReplicationSlots}, ${info.slotsInUse} in use: slot ${ctx.slot} takes the last free one`, raiseSlots);
  else add('ok', 'server', `max_replication_slots ${info.maxReplicationSlots}, ${info.slotsInUse} in use: a slot is free for ${ctx.slot}`);

  // Unlimited retention: warned here unless the slot's lag warning below already says it.
  const s0 = info.slot;
  const lagWarned = s0 !== null && s0.walStatus !== 'lost' && s0.lagBytes !== null && s0.lagBytes > SLOT_LAG_WARN_BYTES;
  if (info.maxSlotWalKeepSize === '-1' && !lagWarned) add('warn', 'server', `max_slot_wal_keep_size is -1 (unlimited): a slot the agent stops reading (agent down, outbox full, agent removed) holds WAL until the server's disk is full`, `as a superuser: ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf(); -- the server then invalidates the slot (the agent reports a gap) rather than fill its disk`);

  // 2. The role: REPLICATION for the slot (create, peek, advance), and the publication.
  if (info.superuser) add('ok', `role ${user}`, `${user} is a superuser (may create and read the slot and the publication)`);
  else if (info.replication) add('ok', `role ${user}`, `${user} has REPLICATION (may create and read the slot)`);
  else add('FAIL', `role ${user}`, `${user} has neither REPLICATION nor superuser: it can neither create nor read replication slot ${ctx.slot}`, `as a superuser: ALTER ROLE ${role} REPLICATION;`);

  const createPub = `CREATE PUBLICATION ${pubRef} FOR TABLE ${(found.length ? found.map(ref) : names.map((n) => tableRef('pg', splitTableName(n) as { schema: string; name: string }))).join(', ')};`;
  if (!info.publication) {
    const notOwned = found.filter((t) => t.isOwner === false);
    if (info.superuser) add('ok', `publication ${ctx.publication}`, `does not exist yet: the agent creates it on start (${user} is a superuser)`);
    else if (!info.canCreateInDatabase || notOwned.length > 0) {
      const needs = [
        ...(info.canCreateInDatabase ? [] : [`CREATE on database ${info.database}`]),
        ...(notOwned.length ? [`ownership of ${notOwned.map((t) => `${t.schema}.${t.name} (owned by ${t.owner ?? '?'})`).join(', ')}`] : []),
      ];
      add('FAIL', `publication ${ctx.publication}`, `does not exist, and ${user} cannot create it: CREATE PUBLICATION … FOR TABLE needs ${needs.join(' and ')} (or superuser)`, `as the tables' owner or a superuser: ${createPub}`);
    } else add('ok', `publication ${ctx.publication}`, `does not exist yet: the agent creates it on start (${user} owns the tables and may CREATE in database ${info.database})`);
  }

  // 3. Each table: readable, and a replica identity (without one the ERP's own UPDATEs and DELETEs
  // on it fail once it is published).
  for (const t of tables) {
    const name = logicalTableName(t.table);
    const ti: LogicalTableInfo | undefined = info.tables.find((x) => `${x.schema}.${x.name}` === name);
    if (!ti) continue;
    if (ti.exists !== true) {
      const similar = ti.similar?.length ? `; found: ${list(ti.similar)} (names are case-sensitive)` : '';
      add('FAIL', name, `table not found: no table "${ti.name}" in schema ${ti.schema} (logical capture reads an unqualified name as public.<name>)${similar}`, `correct \`table: ${t.table}\` under logical.tables in the config (schema-qualify it as schema.table), or create the table`);
      continue;
    }
    if (ti.schemaUsage === false) add('FAIL', name, `user ${user} has no USAGE on schema ${ti.schema}${ti.canSelect ? '' : ' and no SELECT on the table'}`, `GRANT USAGE ON SCHEMA ${sqlIdent('pg', ti.schema)} TO ${role};${ti.canSelect ? '' : ` ${grantSelect('pg', ti, ctx.identity)}`}`);
    else if (!ti.canSelect) add('FAIL', name, `user ${user} cannot SELECT from it`, grantSelect('pg', ti, ctx.identity));
    else add('ok', name, `exists; ${user} can SELECT from it`);
    const missingKey = (t.key ?? []).filter((k) => !ti.columns.some((c) => c.name === k));
    if (missingKey.length) add('FAIL', name, `key column${missingKey.length > 1 ? 's' : ''} ${list(missingKey)} not in the table (its columns: ${list(ti.columns.map((c) => c.name))})`, `correct \`key:\` in the config${ti.primaryKey.length ? ` (key: [${list(ti.primaryKey)}]), or leave it out: the replica identity is the key` : ''}`);
    const noIdentity = `: its changes cannot be decoded with their key, and once it is in the publication the server refuses UPDATE and DELETE on it (the ERP's own writes fail)`;
    const identityFix = `ALTER TABLE ${ref(ti)} REPLICA IDENTITY FULL; -- or add a primary key: ALTER TABLE ${ref(ti)} ADD PRIMARY KEY (<key columns>);`;
    switch (ti.replicaIdentity) {
      case 'd':
        if (ti.primaryKey.length) add('ok', name, `replica identity: the primary key (${list(ti.primaryKey)})`);
        else add('FAIL', name, `no primary key and REPLICA IDENTITY DEFAULT (which means the primary key)${noIdentity}`, identityFix);
        break;
      case 'n':
        add('FAIL', name, `REPLICA IDENTITY NOTHING${noIdentity}`, identityFix.replace(' -- or add a primary key: ', ' -- or, with a primary key: ').replace(/ADD PRIMARY KEY \(<key columns>\);$/, 'REPLICA IDENTITY DEFAULT;'));
        break;
      case 'f':
        add('ok', name, `replica identity FULL (deletes and updates carry every column${t.key || ti.primaryKey.length ? '' : '; without key: in the config every column is the record key'})`);
        break;
      case 'i':
        add('ok', name, 'replica identity: a unique index');
        break;
      default:
    }
    // The initial snapshot pages by the key (keyset): it needs one the table has, or one configured.
    if (t.initial === 'snapshot' && !t.key && ti.primaryKey.length === 0 && (ti.replicaIdentity === 'f' || ti.replicaIdentity === 'i')) {
      add('FAIL', name, 'initial: snapshot needs a key to page the rows by, and the table has no primary key', `set \`key: [<unique, not-null columns>]\` for it under logical.tables, or \`initial: none\` (no rows already there are loaded), or: ALTER TABLE ${ref(ti)} ADD PRIMARY KEY (<key columns>);`);
    }
  }

  // 4. The slot, if it exists.
  const slotSubject = `slot ${ctx.slot}`;
  if (!info.slot) {
    if (info.superuser || info.replication) add('ok', slotSubject, `does not exist yet: the agent creates it (pgoutput) on start; capture begins there`);
  } else {
    const s = info.slot;
    const drop = `SELECT pg_drop_replication_slot(${slotLit});`;
    if (s.slotType !== 'logical' || s.plugin !== 'pgoutput') add('FAIL', slotSubject, `exists as a ${s.slotType} slot${s.plugin ? ` with plugin ${s.plugin}` : ''}, not a logical slot with pgoutput`, `name another slot (logical.slot in the config), or, if nothing else uses it: ${drop}`);
    else if (s.database !== null && s.database !== info.database) add('FAIL', slotSubject, `belongs to database ${s.database}, not ${info.database}: a logical slot decodes one database only`, `name another slot (logical.slot in the config), or, if nothing else uses it, as a superuser in ${s.database}: ${drop}`);
    else if (s.walStatus === 'lost') add('FAIL', slotSubject, `invalidated by the server (wal_status lost): WAL it needed was removed (past max_slot_wal_keep_size), so changes were lost; on start the agent drops and re-creates it and reports a gap`, `start the agent: it drops the slot, creates a new one and appends a gap record naming it (or drop it now: ${drop}); reload the tables downstream; raise max_slot_wal_keep_size (now ${info.maxSlotWalKeepSize}) or keep the agent reading`);
    else {
      const lag = s.lagBytes;
      const keep = info.maxSlotWalKeepSize === '-1' ? 'unlimited (-1)' : info.maxSlotWalKeepSize;
      const keepFix = info.maxSlotWalKeepSize === '-1' ? `as a superuser: ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'; SELECT pg_reload_conf(); -- the server then invalidates the slot (a gap) rather than fill its disk` : undefined;
      const status = s.walStatus ? `, wal_status ${s.walStatus}` : '';
      if (lag !== null && lag > SLOT_LAG_WARN_BYTES) add('warn', slotSubject, `holds back ${formatBytes(lag)} of WAL on the server (pgoutput${status}${s.active ? ', active' : ''}): the agent has not read it for a while; max_slot_wal_keep_size is ${keep}`, keepFix ?? `start the agent so it catches up; if the agent is gone for good: ${drop}`);
      else if (s.walStatus === 'unreserved') add('warn', slotSubject, `wal_status unreserved: WAL it needs is about to be removed (max_slot_wal_keep_size ${keep}); lag ${lag === null ? 'unknown' : formatBytes(lag)}`, 'start the agent so it catches up before the next checkpoint');
      else add('ok', slotSubject, `pgoutput${status}, lag ${lag === null ? 'unknown' : formatBytes(lag)}`);
    }
  }

  // 5. The publication, if it exists.
  if (info.publication) {
    const p = info.publication;
    const subject = `publication ${ctx.publication}`;
    const missing = p.allTables ? [] : found.filter((t) => !p.tables.includes(`${t.schema}.${t.name}`));
    if (missing.length) {
      const alter = `ALTER PUBLICATION ${pubRef} ADD TABLE ${missing.map(ref).join(', ')};`;
      const canAlter = info.superuser || (p.isOwner && missing.every((t) => t.isOwner));
      if (canAlter) add('warn', subject, `does not publish ${list(missing.map((t) => `${t.schema}.${t.name}`))}: the agent adds ${missing.length > 1 ? 'them' : 'it'} on start; changes made before that are not captured`, alter);
      else add('FAIL', subject, `does not publish ${list(missing.map((t) => `${t.schema}.${t.name}`))}, and ${user} cannot add ${missing.length > 1 ? 'them' : 'it'} (ALTER PUBLICATION … ADD TABLE needs ownership of the publication, owned by ${p.owner}, and of the table${missing.length > 1 ? 's' : ''}, or superuser)`, `as the owner or a superuser: ${alter}`);
    } else add('ok', subject, p.allTables ? 'publishes all tables' : `publishes ${list(found.map((t) => `${t.schema}.${t.name}`))}`);
    const off = (['insert', 'update', 'delete', 'truncate'] as const).filter((op) => !p[op]);
    if (off.length) add('warn', subject, `does not publish ${list(off)}: those changes never reach the agent`, `ALTER PUBLICATION ${pubRef} SET (publish = 'insert, update, delete, truncate');`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Connection

/** `user@host:port/database`, as configured (no password, ever). */
const DEFAULT_PORT: Record<SqlConfig['driver'], number> = { pg: 5432, mysql: 3306, mssql: 1433 };

export function describeConnection(cfg: SqlConfig): string {
  const c = cfg.connection;
  return `${c.user}@${c.host}:${c.port ?? DEFAULT_PORT[cfg.driver]}/${c.database}`;
}

/** A failed connect as one FAIL: what was tried, the driver's error, and what usually fixes it. */
export function connectFailure(cfg: SqlConfig, err: unknown): CheckResult {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown };
  const code = typeof e.code === 'string' ? e.code : undefined;
  const errno = typeof e.errno === 'number' ? e.errno : undefined;
  const c = cfg.connection;
  const text = errorText(err, c.password);
  const where = describeConnection(cfg);
  let fix: string | undefined;
  if (code === 'ECONNREFUSED') fix = `nothing listens on ${c.host}:${c.port ?? DEFAULT_PORT[cfg.driver]}: start the server, or correct connection.host and connection.port`;
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') fix = `the host name does not resolve: correct connection.host`;
  else if (code === 'ETIMEDOUT' || /timeout/i.test(text)) fix = `no answer within connection.connect_timeout: check connection.host, connection.port and any firewall between`;
  else if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') fix = `no route to ${c.host}: check connection.host and the network`;
  else if (code === '28P01' || errno === 1045 || code === 'ELOGIN') fix = `wrong user or password: check connection.user and connection.password`;
  else if (code === '28000' && /pg_hba/.test(text)) fix = `the server does not admit this user from this host: add a line to pg_hba.conf (host ${c.database} ${c.user} <this host's address>/32 scram-sha-256) and reload PostgreSQL`;
  else if (code === '3D000' || errno === 1049) fix = `no database ${c.database} on this server: correct connection.database`;
  else if (code === '42501') fix = `GRANT CONNECT ON DATABASE ${sqlIdent('pg', c.database)} TO ${sqlIdent('pg', c.user)};`;
  else if (errno === 1044) fix = incrementalTables(cfg).map((t) => grantSelect('mysql', { schema: splitTableName(t.table).schema ?? c.database, name: splitTableName(t.table).name }, { user: c.user, userHost: '%' })).join(' ');
  return { level: 'FAIL', collector: cfg.name, subject: 'connect', message: `cannot connect to ${where} (${cfg.driver}): ${text}`, ...(fix ? { fix } : {}) };
}

/** A driver's error as one line, with the password (should a driver ever echo it) masked. */
export function errorText(err: unknown, password: string): string {
  const e = err as { code?: unknown; message?: unknown; errors?: unknown };
  // Node's connect errors for a host with several addresses are an AggregateError with no message.
  let message = typeof e.message === 'string' && e.message ? e.message : '';
  if (!message && Array.isArray(e.errors)) message = e.errors.map((x) => (x as Error).message).join('; ');
  if (!message) message = String(err);
  if (typeof e.code === 'string' && !message.includes(e.code)) message = `${message} (${e.code})`;
  return password ? message.replaceAll(password, '***') : message;
}

// ---------------------------------------------------------------------------------------------
// One collector, against its database

const DIALECTS: Record<Driver, () => Promise<DialectModule>> = {
  pg: () => import('../../databases/dialects/pg.js'),
  mysql: () => import('../../databases/dialects/mysql.js'),
};

/**
 * A `mode: query` statement: runs its first page (one row, `:last` = start) as the capture would,
 * which also orders by the key and version columns: a name not in the result fails there.
 */
async function checkQuery(q: QueryConfig, source: SqlSource, cfg: SqlConfig): Promise<CheckResult> {
  const subject = `query ${q.name}`;
  let rows;
  try {
    rows = await source.readQuery({ sql: q.query, last: q.start, key: q.key, versionColumn: q.version_column, limit: 1 });
  } catch (err) {
    return { level: 'FAIL', collector: cfg.name, subject, message: `the statement fails (run as SELECT q.* FROM (<query>) q ORDER BY ${[q.version_column, ...q.key].join(', ')} with :last = ${JSON.stringify(q.start)}): ${errorText(err, cfg.connection.password)}`, fix: 'correct `query` (and GRANT SELECT on what it reads to the capture user); key and version_column must be columns of its result' };
  }
  // The key and version columns are in the result, or the ORDER BY above would have failed.
  if (!rows[0]) return { level: 'warn', collector: cfg.name, subject, message: `runs, but returns no row after start (${JSON.stringify(q.start)}): nothing to capture yet` };
  return { level: 'ok', collector: cfg.name, subject, message: `runs; key (${q.key.join(', ')}) and version_column ${q.version_column} are in its result` };
}

/** Connects as the collector would, checks every table, and closes. Never throws for a database problem. */
export async function testSqlCollector(cfg: SqlConfig, load: (driver: Driver) => Promise<DialectModule> = (d) => DIALECTS[d]()): Promise<CheckResult[]> {
  // SQL Server has its own checks (mssql-check.ts); sql-test.ts chooses.
  if (cfg.driver === 'mssql') throw new Error('a driver: mssql collector is checked by mssql-check.ts (sql-test.ts testCollector)');
  const driver: Driver = cfg.driver;
  const c = cfg.connection;
  let source: SqlSource;
  try {
    const dialect = await load(driver);
    source = await dialect.connect({ host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, poolSize: 1, connectTimeoutMs: c.connect_timeout });
  } catch (err) {
    return [connectFailure(cfg, err)];
  }
  const out: CheckResult[] = [];
  try {
    if (!source.identity || !source.inspectTable) throw new Error(`the ${cfg.driver} dialect cannot inspect tables`);
    const identity = await source.identity();
    out.push({ level: 'ok', collector: cfg.name, subject: 'connect', message: `${describeConnection(cfg)} (${cfg.driver}): ${identity.server}, as ${identity.userHost ? `${identity.user}@${identity.userHost}` : identity.user}` });
    for (const t of cfg.tables) {
      if (t.mode === 'query') {
        out.push(await checkQuery(t, source, cfg));
        continue;
      }
      if (t.mode !== 'incremental') continue; // SQL Server modes: refused by the config for this driver
      try {
        out.push(...checkTable(t, await source.inspectTable(t.table), { collector: cfg.name, driver, identity }));
      } catch (err) {
        out.push({ level: 'FAIL', collector: cfg.name, subject: t.table, message: `could not inspect the table: ${errorText(err, c.password)}` });
      }
    }
    if (cfg.logical) {
      const { slot, publication } = logicalNames(cfg);
      if (!source.inspectLogical) throw new Error(`the ${cfg.driver} dialect cannot inspect logical decoding (logical: needs driver: pg)`);
      try {
        const info = await source.inspectLogical({ slot, publication, tables: cfg.logical.tables.map((t) => logicalTableName(t.table)) });
        out.push(...checkLogical(cfg.logical.tables, info, { collector: cfg.name, identity, slot, publication }));
      } catch (err) {
        out.push({ level: 'FAIL', collector: cfg.name, subject: 'logical', message: `could not inspect logical decoding: ${errorText(err, c.password)}` });
      }
    }
  } catch (err) {
    out.push({ level: 'FAIL', collector: cfg.name, subject: 'connect', message: `connected to ${describeConnection(cfg)}, then: ${errorText(err, c.password)}` });
  } finally {
    await source.close().catch(() => undefined);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Output

/** One line per check: `FAIL  erp  public.orders  message  fix: statement`. */
export function formatResult(r: CheckResult, redact: (s: string) => string = (s) => s): string {
  return redact(`${r.level.padEnd(4)}  ${r.collector}  ${r.subject}  ${r.message}${r.fix ? `  fix: ${r.fix}` : ''}`);
}

/** `2 FAIL, 1 warn, 7 ok` */
export function summary(results: readonly CheckResult[]): string {
  const n = (l: CheckLevel) => results.filter((r) => r.level === l).length;
  return `${n('FAIL')} FAIL, ${n('warn')} warn, ${n('ok')} ok`;
}

/** Every check's line, then the summary. */
export function formatResults(results: readonly CheckResult[], redact: (s: string) => string = (s) => s): string {
  return `${[...results.map((r) => formatResult(r, redact)), summary(results)].join('\n')}\n`;
}

/** Exit code: 1 when any check failed. */
export function exitCode(results: readonly CheckResult[]): number {
  return results.some((r) => r.level === 'FAIL') ? 1 : 0;
}

/**
 * An environment that notes every variable the config loader reads (value → `${NAME}`), so that
 * what came from `${VAR}` can be kept out of the output.
 */
export function recordingEnv(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; used: Map<string, string> } {
  const used = new Map<string, string>();
  const proxy = new Proxy(env, {
    get(target, prop, receiver) {
      const value: unknown = typeof prop === 'string' ? target[prop] : Reflect.get(target, prop, receiver);
      if (typeof prop === 'string' && typeof value === 'string' && value !== '') used.set(value, `\${${prop}}`);
      return value;
    },
  });
  return { env: proxy, used };
}

/**
 * Replaces config values that came from `${VAR}` by the reference (`${DB_HOST}`), as whole words.
 * Passwords are masked where a driver's text is taken in (the checks never write one); here, as a
 * second guard, only those of 8 characters or more, anywhere (a short one would mask ordinary words
 * of the output: a password `wrong` in "wrong user or password").
 */
export function redactor(fromEnv: ReadonlyMap<string, string>, passwords: readonly string[]): (s: string) => string {
  const words = [...fromEnv].filter(([value]) => !passwords.includes(value)).sort((a, b) => b[0].length - a[0].length);
  const secrets = passwords.filter((p) => p.length >= 8).sort((a, b) => b.length - a.length);
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return (s) => {
    let out = s;
    for (const p of secrets) out = out.replaceAll(p, '***');
    for (const [value, ref] of words) out = out.replace(new RegExp(`(?<![A-Za-z0-9_])${escape(value)}(?![A-Za-z0-9_])`, 'g'), () => ref);
    return out;
  };
}
