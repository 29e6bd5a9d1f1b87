import { expect } from 'vitest';
import {
  binaryHex,
  cdcBounds,
  cdcPoll,
  changeTrackingPoll,
  changeTrackingVersions,
  rowversionBaseline,
  rowversionPoll,
  snapshotChunk,
  type MssqlColumn,
  type MssqlTable,
  type Statement,
} from '../../agent/databases/dialects/mssql-statements.js';
import { existingKeysStatement } from '../../agent/databases/dialects/mssql-keys.js';
import { captureInstanceStatement, prerequisitesStatement, tableAccessStatement } from '../../agent/databases/dialects/mssql-metadata.js';
import type { MssqlQuery, MssqlRows, MssqlRunner, MssqlSession, MssqlStream } from '../../agent/databases/mssql-runner.js';

/**
 * An in-memory SQL Server for the mssql capture tests (SQL Server cannot run here): one table,
 * `dbo.Orders (id int PK, status nvarchar(20), amount decimal(10,2), rv rowversion)`, with Change
 * Tracking, rowversions and a CDC capture instance kept as the server would. Every statement that
 * comes in must be exactly what the mssql-statements builder gives for its parameters (asserted),
 * else it throws: the fake answers only the SQL the engine is meant to send. Values come back as
 * tedious gives them (bigint as text, binary as Buffer, decimals as the text the SELECT casts to).
 */

export const TABLE = 'dbo.Orders';
export const INSTANCE = 'dbo_Orders';
export const COLUMNS: MssqlColumn[] = [
  { name: 'id', type: 'int' },
  { name: 'status', type: 'nvarchar', length: 20 },
  { name: 'amount', type: 'decimal', precision: 10, scale: 2 },
  { name: 'rv', type: 'timestamp' },
];

interface Row {
  id: number;
  status: string;
  amount: string;
  rv: bigint;
}

/** Change Tracking's per-key info: the version that created it, the last change's, deleted or not. */
interface Tracked {
  created: bigint;
  last: bigint;
  deleted: boolean;
}

interface CdcEntry {
  lsn: bigint;
  seq: bigint;
  op: 1 | 2 | 3 | 4;
  row: Row;
}

const buf = (v: bigint, bytes: number) => Buffer.from(v.toString(16).padStart(bytes * 2, '0'), 'hex');
const big = (b: unknown) => BigInt(`0x${(b as Buffer).toString('hex')}`);

export class FakeSqlServer implements MssqlRunner {
  readonly rows = new Map<number, Row>();
  /** The table's columns now (ALTER TABLE … ADD in a test: `cols.push`); rows hold no value for an added one (NULL). */
  readonly cols: MssqlColumn[] = COLUMNS.map((c) => ({ ...c }));
  private readonly tracked = new Map<number, Tracked>();
  ctVersion = 10n;
  ctMinValid = 0n;
  private nextRv = 0x7d0n;
  /** A transaction holding a rowversion it has not committed: MIN_ACTIVE_ROWVERSION() stays at it. */
  private openRv: bigint | null = null;
  private readonly cdc: CdcEntry[] = [];
  private lsn = 0x1000n;
  cdcMinLsn = 0x1000n;
  /** What came, in order: `begin`, `commit`, `rollback`, or the builder's name with its arguments. */
  readonly log: string[] = [];
  /** Throws instead of answering the statement `log` would name with this prefix, `times` times. */
  failOn: { prefix: string; skip: number } | null = null;
  closed = false;
  /** While true every statement fails, as a server that is down. */
  down = false;
  /** What `edge-agent sql test` reads: the database's and the table's settings and grants. */
  settings = { ctDatabase: true, snapshotIsolation: true, cdcDatabase: true, ctTable: true, canSelect: true, canViewCt: true, cdcInstance: true };
  /** Runs before the named statement is answered (e.g. to change rows between snapshot chunks). */
  hook: ((name: string) => void) | null = null;

  // -- writes, as the ERP would make them (each its own transaction) -----------------------------

  insert(id: number, status: string, amount = '0.00'): void {
    const v = ++this.ctVersion;
    const row = { id, status, amount, rv: this.nextRv++ };
    this.rows.set(id, row);
    const before = this.tracked.get(id);
    this.tracked.set(id, { created: before && !before.deleted ? before.created : v, last: v, deleted: false });
    this.cdcLog([[2, row]]);
  }

  update(id: number, status: string): void {
    const old = this.rows.get(id)!;
    const v = ++this.ctVersion;
    const row = { ...old, status, rv: this.nextRv++ };
    this.rows.set(id, row);
    this.tracked.set(id, { ...this.tracked.get(id)!, last: v });
    this.cdcLog([[3, old], [4, row]]);
  }

  delete(id: number): void {
    const old = this.rows.get(id)!;
    const v = ++this.ctVersion;
    this.rows.delete(id);
    this.tracked.set(id, { ...this.tracked.get(id)!, last: v, deleted: true });
    this.cdcLog([[1, old]]);
  }

  /** An update whose transaction takes its rowversion now and commits at `commit()`. */
  beginUpdate(id: number, status: string): { commit: () => void } {
    const rv = this.nextRv++;
    this.openRv = rv;
    return {
      commit: () => {
        this.openRv = null;
        this.rows.set(id, { ...this.rows.get(id)!, status, rv });
      },
    };
  }

  /** Retention cleanup: change rows below these are gone. */
  cleanUp(opts: { ctMinValid?: bigint; cdcMinLsn?: bigint }): void {
    if (opts.ctMinValid !== undefined) this.ctMinValid = opts.ctMinValid;
    if (opts.cdcMinLsn !== undefined) this.cdcMinLsn = opts.cdcMinLsn;
  }

  get cdcMaxLsn(): bigint {
    return this.lsn;
  }

  private cdcLog(changes: [CdcEntry['op'], Row][]): void {
    const lsn = ++this.lsn;
    changes.forEach(([op, row], i) => this.cdc.push({ lsn, seq: BigInt(i + 1), op, row: { ...row } }));
  }

  // -- MssqlRunner ---------------------------------------------------------------------------------

  query: MssqlQuery = async (stmt) => this.answer(stmt);

  /** The rows in pages, each handed over before the next (as the driver's paused stream). */
  stream: MssqlStream = async (stmt, pageSize, onPage) => {
    const rows = await this.answer(stmt);
    for (let i = 0; i < rows.length; i += pageSize) await onPage(rows.slice(i, i + pageSize));
  };

  async inSnapshotTransaction<T>(fn: (s: MssqlSession) => Promise<T>): Promise<T> {
    this.log.push('begin');
    try {
      const r = await fn({ query: this.query, stream: this.stream });
      this.log.push('commit');
      return r;
    } catch (err) {
      this.log.push('rollback');
      throw err;
    }
  }

  async columns(table: string): Promise<MssqlColumn[]> {
    return table === TABLE ? this.cols.map((c) => ({ ...c })) : [];
  }

  async primaryKey(table: string): Promise<string[]> {
    return table === TABLE ? ['id'] : [];
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // -- statements ----------------------------------------------------------------------------------

  private get shape(): MssqlTable {
    return { name: TABLE, key: ['id'], columns: this.cols };
  }

  private async answer(stmt: Statement): Promise<MssqlRows> {
    const SHAPE = this.shape;
    const p = Object.fromEntries(stmt.params.map((x) => [x.name, x.value]));
    const same = (built: Statement, name: string) => {
      expect(stmt, `statement sent for ${name}`).toEqual(built);
      this.note(name);
    };
    const sql = stmt.sql;
    if (sql.includes('CHANGE_TRACKING_CURRENT_VERSION()')) {
      same(changeTrackingVersions(TABLE), 'ct.versions');
      return [{ current_version: String(this.ctVersion), min_valid_version: String(this.ctMinValid) }];
    }
    if (sql.includes('CHANGETABLE(CHANGES')) {
      same(changeTrackingPoll(SHAPE, String(p.last), String(p.to)), `ct.poll(${p.last},${p.to})`);
      return this.ctChanges(BigInt(String(p.last)), BigInt(String(p.to)));
    }
    if (sql.includes('MIN_ACTIVE_ROWVERSION() AS')) {
      same(rowversionBaseline(), 'rv.baseline');
      return [{ min_active_rowversion: buf(this.minActiveRv(), 8) }];
    }
    if (sql.includes('MIN_ACTIVE_ROWVERSION()')) {
      const lo = binaryHex(p.lo as Buffer);
      same(rowversionPoll(SHAPE, 'rv', lo, Number(p.limit)), `rv.poll(${lo})`);
      const min = this.minActiveRv();
      return [...this.rows.values()]
        .filter((r) => r.rv >= big(p.lo) && r.rv < min)
        .sort((a, b) => (a.rv < b.rv ? -1 : 1))
        .slice(0, Number(p.limit))
        .map((r) => this.wire(r));
    }
    if (sql.includes('fn_cdc_get_max_lsn')) {
      const saved = p.lsn === null ? null : binaryHex(p.lsn as Buffer);
      same(cdcBounds(INSTANCE, saved), `cdc.bounds(${saved})`);
      return [{ min_lsn: buf(this.cdcMinLsn, 10), max_lsn: buf(this.lsn, 10), next_lsn: saved === null ? null : buf(big(p.lsn) + 1n, 10) }];
    }
    if (sql.includes('fn_cdc_get_all_changes_')) {
      const from = binaryHex(p.from_lsn as Buffer);
      const to = binaryHex(p.to_lsn as Buffer);
      same(cdcPoll(INSTANCE, this.cols, from, to), `cdc.poll(${from},${to})`);
      return this.cdc
        .filter((e) => e.lsn >= big(p.from_lsn) && e.lsn <= big(p.to_lsn))
        .map((e) => ({ __$start_lsn: buf(e.lsn, 10), __$seqval: buf(e.seq, 10), __$operation: e.op, ...this.wire(e.row) }));
    }
    if (sql.startsWith('SELECT TOP (@limit)')) {
      const after = 'k0' in p ? [p.k0 as number] : null;
      const ct = sql.includes('CHANGETABLE(VERSION');
      same(snapshotChunk(SHAPE, after, Number(p.limit), { changeTrackingVersion: ct }), `snapshot(${after ?? '-'})`);
      return [...this.rows.values()]
        .filter((r) => after === null || r.id > after[0]!)
        .sort((a, b) => a.id - b.id)
        .slice(0, Number(p.limit))
        .map((r) => {
          const t = this.tracked.get(r.id);
          return ct ? { SYS_CHANGE_VERSION: t && t.last >= this.ctMinValid ? String(t.last) : null, ...this.wire(r) } : this.wire(r);
        });
    }
    if (sql.includes('WHERE EXISTS (SELECT 1 FROM')) {
      const keys: unknown[][] = [];
      for (const x of stmt.params) {
        const [, i, j] = /^p(\d+)_(\d+)$/.exec(x.name)!;
        (keys[Number(i)] ??= [])[Number(j)] = x.value;
      }
      same(existingKeysStatement(SHAPE, keys), `keys(${keys.map((k) => k.join('|')).join(',')})`);
      return keys.flatMap((k, i) => (this.rows.has(Number(k[0])) ? [{ i }] : []));
    }
    if (sql.includes('SUSER_SNAME()')) {
      same(prerequisitesStatement(), 'check.prerequisites');
      const on = (b: boolean) => (b ? 1 : 0);
      return [{ login: 'edge', db_user: 'edge', db: 'erp', server: '16.0.4135.4', snapshot_isolation: on(this.settings.snapshotIsolation), cdc_enabled: this.settings.cdcDatabase, ct_enabled: on(this.settings.ctDatabase) }];
    }
    if (sql.includes('HAS_PERMS_BY_NAME')) {
      const table = String(p.table).replace(/\[|\]/g, '');
      same(tableAccessStatement(table), `check.table(${table})`);
      const on = (b: boolean) => (b ? 1 : 0);
      return [{ object_id: table === TABLE ? 581577110 : null, can_select: on(this.settings.canSelect), can_view_ct: on(this.settings.canViewCt), ct_enabled: on(this.settings.ctTable) }];
    }
    if (sql.includes('fn_cdc_get_min_lsn(@instance) AS min_lsn')) {
      same(captureInstanceStatement(String(p.instance)), `check.cdc(${p.instance})`);
      return [{ min_lsn: buf(p.instance === INSTANCE && this.settings.cdcInstance ? this.cdcMinLsn : 0n, 10) }];
    }
    throw new Error(`the fake SQL Server does not know this statement: ${sql}`);
  }

  private note(name: string): void {
    this.hook?.(name);
    if (this.down) throw Object.assign(new Error('Failed to connect to erp-db:1433 - connect ECONNREFUSED'), { code: 'ESOCKET' });
    if (this.failOn && name.startsWith(this.failOn.prefix)) {
      if (this.failOn.skip === 0) {
        this.failOn = null;
        this.log.push(`${name} FAILED`);
        throw Object.assign(new Error('Connection lost - read ECONNRESET'), { code: 'ESOCKET' });
      }
      this.failOn.skip--;
    }
    this.log.push(name);
  }

  private minActiveRv(): bigint {
    return this.openRv ?? this.nextRv;
  }

  /** CHANGETABLE(CHANGES t, last) joined back: the net change per key with a version in (last, to]. */
  private ctChanges(last: bigint, to: bigint): MssqlRows {
    return [...this.tracked.entries()]
      .filter(([, t]) => t.last > last && t.last <= to)
      .sort(([a, x], [b, y]) => (x.last === y.last ? a - b : x.last < y.last ? -1 : 1))
      .map(([id, t]) => {
        const op = t.deleted ? 'D' : t.created > last ? 'I' : 'U';
        const row = this.rows.get(id);
        return { SYS_CHANGE_VERSION: String(t.last), SYS_CHANGE_OPERATION: op, ...(row ? this.wire(row) : { id, status: null, amount: null, rv: null }) };
      });
  }

  private wire(r: Row): Record<string, unknown> {
    return { id: r.id, status: r.status, amount: r.amount, rv: buf(r.rv, 8) };
  }
}

/** The rowversion the fake gave `n` (0x hex), for expectations. */
export function rvHex(n: bigint): string {
  return `0x${n.toString(16).toUpperCase().padStart(16, '0')}`;
}
