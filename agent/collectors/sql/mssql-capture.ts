import { ErpEdgeError } from '../../../common/errors.js';
import type { CaptureInput, Writer } from '../../host/writer.js';
import type { CaptureTarget } from './capture-target.js';
import { noteSchema } from '../../databases/schema-version.js';
import {
  binaryHex,
  cdcBounds,
  cdcOperation,
  cdcPoll,
  cdcVersion,
  changeTrackingOperation,
  changeTrackingPoll,
  changeTrackingVersions,
  decideCdc,
  decideChangeTracking,
  keysetCheckpoint,
  mapMssqlRow,
  mapMssqlValue,
  nextRowversion,
  rowversionBaseline,
  rowversionPoll,
  schemaVersion,
  snapshotChunk,
  type CaptureDecision,
  type MssqlColumn,
  type MssqlTable,
  type WireValue,
} from '../../databases/dialects/mssql-statements.js';
import { existingKeysStatement, keysPerStatement, unmatchableKeyColumns } from '../../databases/dialects/mssql-keys.js';
import { checkpointKey } from './incremental.js';
import type { MssqlRows, MssqlRunner } from '../../databases/mssql-runner.js';
import { reconcileDeletes, type ReconcileTarget } from './reconcile.js';
import { recordKey, rowRecord } from './record.js';
import { captureInstanceOf, type MssqlTableConfig } from './schema.js';
import { snapshotMarker } from './snapshot.js';

/**
 * SQL Server capture of one table (`mode: change_tracking | rowversion | cdc`), against the
 * MssqlRunner interface. Each poll: the saved checkpoint; a first start takes the change mode's
 * current position (the hand-over point) and loads the table in keyset chunks (resumable, between
 * snapshot_start and snapshot_end records); then the changes after the position, page by page.
 * Every page is ONE writer.append: its records, the checkpoint after it and the versions captured
 * per key, in one outbox transaction.
 *
 * No gap, no duplicate at the hand-over: rows changed while the snapshot ran come again from the
 * change mode; a row the snapshot read at the version the change carries is known (versions per
 * key in the outbox, as incremental.ts) and not emitted again. Change Tracking and rowversion give
 * every snapshot row its real version, so that holds; CDC has no per-row LSN to read beside the
 * row, so a row changed while its snapshot ran arrives in the snapshot and again as its change
 * (in order: the final state is right).
 *
 * A checkpoint the database can no longer continue from (Change Tracking below
 * CHANGE_TRACKING_MIN_VALID_VERSION, CDC below the capture instance's min LSN, or either ahead of
 * the database after a restore) is never skipped: a `gap` record and a new snapshot_start are
 * appended with a checkpoint that restarts the table's snapshot, in one transaction.
 */

type Mode = MssqlTableConfig['mode'];
type KeysetValue = string | number | boolean | null;

export interface MssqlCheckpoint {
  mode: Mode;
  /**
   * Where the changes continue from. change_tracking: the last version read (decimal text);
   * rowversion: the lowest rowversion not yet read (0x hex, see nextRowversion); cdc: the last LSN
   * read (0x hex). While a snapshot runs: the position taken when it began (the hand-over point).
   */
  position: string;
  /** Present while the snapshot runs. */
  snapshot?: { after: KeysetValue[] | null; rows: number; startedAt: number } | undefined;
  /** Schema version of the last records captured (schema-version.ts). */
  schema?: string | undefined;
}

export interface MssqlCaptureOptions extends CaptureTarget {
  table: MssqlTableConfig;
  runner: MssqlRunner;
  /** The collector's time_zone: the table's own, else this, else UTC. */
  timeZone?: string | undefined;
}

export interface PollResult {
  records: number;
  deletes: number;
}

/** The table as read this poll: columns, key, and the schema version records carry. */
interface Shape {
  table: MssqlTable;
  columns: MssqlColumn[];
  key: string[];
  schemaVersion: string;
}

/** A change ready to append: its record and what the key store gets. */
interface Change {
  record: CaptureInput;
  key: string;
  version: string;
  keyValues: WireValue[];
}

export class MssqlCapture {
  private readonly t: MssqlTableConfig;
  /** IANA zone of the server's zone-less date-times. */
  private readonly zone: string;
  private readonly cpKey: string;

  constructor(private readonly o: MssqlCaptureOptions) {
    this.t = o.table;
    this.zone = o.table.time_zone ?? o.timeZone ?? 'UTC';
    this.cpKey = checkpointKey(o.table.table);
  }

  /** One poll: snapshot work left, then the changes until caught up. */
  async poll(signal: AbortSignal): Promise<PollResult> {
    const shape = await this.shape();
    const out: PollResult = { records: 0, deletes: 0 };
    let cp = this.checkpoint();
    if (!cp) {
      if (this.t.initial === 'none') {
        await this.o.writer.append([], { key: this.cpKey, value: { mode: this.t.mode, position: await this.baseline() } satisfies MssqlCheckpoint });
        return out;
      }
      cp = await this.begin([]);
    }
    if (cp.mode !== this.t.mode) throw new ErpEdgeError('ERP_CONFIG_INVALID', `table ${this.t.table} was captured with mode ${cp.mode}, now configured as ${this.t.mode}: its checkpoint cannot be continued; delete the checkpoint (or restore the mode) to start over`, { table: this.t.table });
    if (cp.snapshot) cp = await this.snapshot(shape, cp, out, signal);
    await this.changes(shape, cp, out, signal);
    return out;
  }

  /**
   * rowversion mode cannot see deletes: every captured key is checked against the table
   * (reconcile.ts, as for incremental capture); a key without a row becomes a `delete` record.
   * A key the server cannot match back as captured (datetime, binary, …) is refused with
   * ERP_COLLECTOR_FAILED, which the collector shows as the table's reconcile_error.
   */
  async reconcile(signal: AbortSignal): Promise<number> {
    const shape = await this.shape();
    const unsafe = unmatchableKeyColumns(shape.table);
    if (unsafe.length > 0) {
      throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `deletes cannot be looked for in ${this.t.table}: key column(s) ${unsafe.join(', ')} cannot be matched back as captured; set reconcile_interval: 0 for this table`, { table: this.t.table, columns: unsafe });
    }
    const per = keysPerStatement(shape.key.length);
    const target: ReconcileTarget = {
      table: { table: this.t.table, key: shape.key },
      source: {
        existingKeys: async (_table, _columns, keys) => {
          const found = new Set<number>();
          for (let i = 0; i < keys.length; i += per) {
            for (const row of await this.o.runner.query(existingKeysStatement(shape.table, keys.slice(i, i + per)))) found.add(i + Number(row.i));
          }
          return found;
        },
      },
      writer: this.o.writer,
      sourceId: this.o.sourceId,
      stream: this.o.stream,
    };
    return reconcileDeletes(target, signal);
  }

  private checkpoint(): MssqlCheckpoint | undefined {
    return this.o.writer.getCheckpoint<MssqlCheckpoint>(this.cpKey);
  }

  private async shape(): Promise<Shape> {
    const columns = await this.o.runner.columns(this.t.table);
    if (columns.length === 0) throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `table ${this.t.table} not found, or this login may not see it`, { table: this.t.table });
    const primaryKey = await this.o.runner.primaryKey(this.t.table);
    const key = this.t.key ?? primaryKey;
    if (key.length === 0) throw new ErpEdgeError('ERP_CONFIG_INVALID', `table ${this.t.table} has no primary key: name its unique key columns with key: [...]`, { table: this.t.table });
    const t = this.t;
    // CHANGETABLE returns the primary key's columns only: a deleted row is known by nothing else.
    if (t.mode === 'change_tracking' && key.join('\u0000') !== primaryKey.join('\u0000')) {
      throw new ErpEdgeError('ERP_CONFIG_INVALID', `change tracking identifies the rows of ${t.table} by its primary key (${primaryKey.join(', ') || 'none'}): remove key: from the config or set it to that`, { table: t.table });
    }
    if (t.mode === 'rowversion' && !columns.some((c) => c.name === t.rowversion_column)) {
      throw new ErpEdgeError('ERP_CONFIG_INVALID', `rowversion_column ${t.rowversion_column} is not a column of ${t.table}`, { table: t.table });
    }
    const version = schemaVersion(columns);
    return { table: { name: this.t.table, key, columns }, columns, key, schemaVersion: version };
  }

  /** The change mode's position now: where changes continue after a snapshot that starts now. */
  private async baseline(): Promise<string> {
    const q = this.o.runner.query;
    switch (this.t.mode) {
      case 'change_tracking': {
        const v = (await q(changeTrackingVersions(this.t.table)))[0] ?? {};
        decideChangeTracking(null, text(v.min_valid_version), text(v.current_version)); // throws when tracking is off
        return text(v.current_version)!;
      }
      case 'rowversion': {
        const v = (await q(rowversionBaseline()))[0] ?? {};
        return hex(v.min_active_rowversion, 'MIN_ACTIVE_ROWVERSION()');
      }
      case 'cdc': {
        const bounds = await this.cdcBounds(null);
        decideCdc(null, bounds); // throws when CDC or the capture instance is missing
        return bounds.max!;
      }
    }
  }

  /** Starts (or restarts) the table's snapshot: `before` (a gap record), the start marker and the checkpoint in one append. */
  private async begin(before: CaptureInput[]): Promise<MssqlCheckpoint> {
    const startedAt = Date.now();
    const cp: MssqlCheckpoint = { mode: this.t.mode, position: await this.baseline(), snapshot: { after: null, rows: 0, startedAt } };
    await this.o.writer.append([...before, snapshotMarker(this.o.sourceId, this.t.table, 'snapshot_start', startedAt)], { key: this.cpKey, value: this.withSchema([], cp) }, { stream: this.o.stream });
    return cp;
  }

  /** The snapshot's chunks from its checkpoint on, each committed with the progress; returns the checkpoint after it. */
  private async snapshot(shape: Shape, cp: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<MssqlCheckpoint> {
    let progress = cp.snapshot!;
    for (;;) {
      signal.throwIfAborted();
      const rows = await this.o.runner.query(snapshotChunk(shape.table, progress.after, this.o.batchSize, { changeTrackingVersion: this.t.mode === 'change_tracking' }));
      const changes = rows.map((row) => this.change(shape, 'snapshot', this.snapshotVersion(shape, row, cp.position), mapMssqlRow(shape.columns, row, { timeZone: this.zone })));
      const done = rows.length < this.o.batchSize;
      const counted = progress.rows + rows.length;
      const next: MssqlCheckpoint = { mode: cp.mode, position: cp.position, snapshot: done ? undefined : { after: keysetCheckpoint(shape.table, rows.at(-1)!), rows: counted, startedAt: progress.startedAt } };
      const records = changes.map((c) => c.record);
      if (done) records.push(snapshotMarker(this.o.sourceId, this.t.table, 'snapshot_end', progress.startedAt, counted));
      await this.o.writer.append(records, { key: this.cpKey, value: this.withSchema(records, next) }, { stream: this.o.stream, keyVersions: { scope: this.t.table, set: changes.map(stored) } });
      out.records += records.length;
      if (done) return next;
      progress = next.snapshot!;
    }
  }

  /** The version a snapshot row carries: the one the change mode would give the same row state. */
  private snapshotVersion(shape: Shape, row: Record<string, unknown>, position: string): string {
    switch (this.t.mode) {
      case 'change_tracking':
        // NULL: unchanged since before the retention window; the hand-over version stands in.
        return text(row.SYS_CHANGE_VERSION) ?? position;
      case 'rowversion':
        return this.rowversionOf(shape, row);
      case 'cdc':
        return position;
    }
  }

  private rowversionOf(shape: Shape, row: Record<string, unknown>): string {
    const t = this.t;
    if (t.mode !== 'rowversion') throw new Error('rowversionOf outside rowversion mode');
    const col = shape.columns.find((c) => c.name === t.rowversion_column)!;
    return String(mapMssqlValue(col, row[col.name], { timeZone: this.zone }));
  }

  private async changes(shape: Shape, cp: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    switch (this.t.mode) {
      case 'change_tracking':
        return this.changeTracking(shape, cp, out, signal);
      case 'rowversion':
        return this.rowversion(shape, cp, out, signal);
      case 'cdc':
        return this.cdc(shape, cp, out, signal);
    }
  }

  /**
   * The min-valid check and the CHANGETABLE read in one snapshot transaction (see
   * SNAPSHOT_TRANSACTION), its rows streamed into the outbox page by page while it is open.
   */
  private async changeTracking(shape: Shape, cp: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    const decision = await this.o.runner.inSnapshotTransaction(async (s) => {
      const v = (await s.query(changeTrackingVersions(this.t.table)))[0] ?? {};
      const d = decideChangeTracking(cp.position, text(v.min_valid_version), text(v.current_version));
      if (d.kind !== 'poll') return d;
      const pages = this.pages(cp, { ...cp, position: d.to }, out, signal);
      await s.stream(changeTrackingPoll(shape.table, d.from, d.to), this.o.batchSize, (rows) =>
        pages.push(
          rows.map((row) => {
            const op = changeTrackingOperation(String(row.SYS_CHANGE_OPERATION));
            const values = mapMssqlRow(shape.columns, row, { timeZone: this.zone });
            // A deleted row is not there to join back to: only its key is known.
            return this.change(shape, op, text(row.SYS_CHANGE_VERSION)!, op === 'delete' ? Object.fromEntries(shape.key.map((k) => [k, values[k]!])) : values);
          }),
        ),
      );
      await pages.finish();
      return d;
    });
    if (decision.kind === 'gap') await this.gap(shape, cp, decision, out, signal);
  }

  /** `rv >= checkpoint AND rv < MIN_ACTIVE_ROWVERSION()`, page by page; each page moves the checkpoint past its last row. */
  private async rowversion(shape: Shape, cp: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    const t = this.t;
    if (t.mode !== 'rowversion') return;
    let position = cp.position;
    for (;;) {
      signal.throwIfAborted();
      const rows = await this.o.runner.query(rowversionPoll(shape.table, t.rowversion_column, position, this.o.batchSize));
      if (rows.length === 0) return;
      const versions = rows.map((row) => this.rowversionOf(shape, row));
      const keys = rows.map((row) => recordKey(shape.key.map((k) => mapMssqlValue(shape.columns.find((c) => c.name === k)!, row[k], { timeZone: this.zone }))));
      const known = this.o.writer.keyVersions(this.t.table, keys);
      // Insert or update cannot be told from a rowversion: a key captured before is an update.
      const changes = rows.map((row, i) => this.change(shape, known.has(keys[i]!) ? 'update' : this.t.initial === 'snapshot' ? 'insert' : 'upsert', versions[i]!, mapMssqlRow(shape.columns, row, { timeZone: this.zone })));
      position = nextRowversion(versions.at(-1)!);
      await this.appendPages(changes, cp, { mode: cp.mode, position }, out, signal);
      if (rows.length < this.o.batchSize) return;
    }
  }

  private async cdc(shape: Shape, cp: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    if (this.t.mode !== 'cdc') return;
    const decision = decideCdc(cp.position, await this.cdcBounds(cp.position));
    if (decision.kind === 'gap') return this.gap(shape, cp, decision, out, signal);
    if (decision.kind !== 'poll') return;
    const pages = this.pages(cp, { mode: cp.mode, position: decision.to }, out, signal);
    await this.o.runner.stream(cdcPoll(captureInstanceOf(this.t), shape.columns, decision.from, decision.to), this.o.batchSize, (rows) => {
      const changes: Change[] = [];
      for (const row of rows) {
        const op = cdcOperation(Number(row.__$operation));
        if (op === null) continue; // an update's before image
        changes.push(this.change(shape, op, cdcVersion(row.__$start_lsn as Uint8Array | string, row.__$seqval as Uint8Array | string), mapMssqlRow(shape.columns, row, { timeZone: this.zone })));
      }
      return pages.push(changes);
    });
    await pages.finish();
  }

  private async cdcBounds(saved: string | null): Promise<{ min: string | null; max: string | null; next: string | null }> {
    if (this.t.mode !== 'cdc') throw new Error('cdcBounds outside cdc mode');
    const b = (await this.o.runner.query(cdcBounds(captureInstanceOf(this.t), saved)))[0] ?? {};
    const h = (v: unknown) => (v === null || v === undefined ? null : hex(v, 'LSN'));
    return { min: h(b.min_lsn), max: h(b.max_lsn), next: h(b.next_lsn) };
  }

  /** The checkpoint cannot be continued: a gap record and a restarted snapshot, committed together, then the snapshot. */
  private async gap(shape: Shape, cp: MssqlCheckpoint, d: Extract<CaptureDecision<string>, { kind: 'gap' }>, out: PollResult, signal: AbortSignal): Promise<void> {
    const t = this.t.table;
    const reason = d.reason === 'below_min_valid' ? 'the checkpoint fell out of the change retention (below the minimum valid version): changes in between are lost to this mode' : 'the checkpoint is ahead of the database (restored from a backup?)';
    const record: CaptureInput = {
      id: `${this.o.sourceId}/${t}/gap/${d.saved}/${d.min}`,
      key: `${t}/gap`,
      data: { op: 'gap', table: t, mode: cp.mode, reason: d.reason, message: reason, saved_version: d.saved, min_valid_version: d.min, current_version: d.current, detected_at: new Date().toISOString(), resnapshot: true },
    };
    out.records += 1;
    const restarted = await this.begin([record]);
    out.records += 1; // snapshot_start
    await this.snapshot(shape, restarted, out, signal);
  }

  /**
   * Changes in pages of batch_size, each one append (appendPage). Pages before the last keep
   * `during` (a crash repeats the read; the key store drops what was appended); the last commits
   * `after`. Used by rowversion, whose pages each move the checkpoint, directly.
   */
  private async appendPages(changes: Change[], during: MssqlCheckpoint, after: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    const pages = this.pages(during, after, out, signal);
    for (let i = 0; i < changes.length; i += this.o.batchSize) await pages.push(changes.slice(i, i + this.o.batchSize));
    await pages.finish();
  }

  /**
   * A streamed poll's pages: each page is appended when the next one comes (with `during`), the
   * last one at finish (with `after`), so the page that ends the poll carries the new checkpoint
   * in its own transaction. Holds at most one page.
   */
  private pages(during: MssqlCheckpoint, after: MssqlCheckpoint, out: PollResult, signal: AbortSignal): { push: (changes: Change[]) => Promise<void>; finish: () => Promise<void> } {
    let held: Change[] | undefined;
    return {
      push: async (changes) => {
        if (held) await this.appendPage(held, during, out, signal);
        held = changes;
      },
      finish: () => this.appendPage(held ?? [], after, out, signal),
    };
  }

  /** One append: the changes not captured before at the same version (the hand-over, a repeated read), the checkpoint, the key versions. */
  private async appendPage(changes: Change[], checkpoint: MssqlCheckpoint, out: PollResult, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const known = this.o.writer.keyVersions(this.t.table, changes.map((c) => c.key));
    const fresh = changes.filter((c) => known.get(c.key) !== c.version);
    const records = fresh.map((c) => c.record);
    await this.o.writer.append(records, { key: this.cpKey, value: this.withSchema(records, checkpoint) }, { stream: this.o.stream, keyVersions: { scope: this.t.table, set: fresh.map(stored) } });
    out.records += fresh.length;
    out.deletes += fresh.filter((c) => (c.record.data as { op: string }).op === 'delete').length;
  }

  /**
   * The checkpoint with the schema version of the records going in with it (the saved one when there
   * are none); the first records read with a new version are flagged `schema_changed`, and the
   * collector is told.
   */
  private withSchema(records: readonly CaptureInput[], cp: MssqlCheckpoint): MssqlCheckpoint {
    const saved = this.o.writer.getCheckpoint<MssqlCheckpoint>(this.cpKey)?.schema;
    const rows = records.map((r) => r.data as Record<string, unknown>).filter((d) => typeof d.schema_version === 'string');
    const current = rows[0]?.schema_version as string | undefined;
    if (noteSchema(this.t.table, saved, current, this.o.onSchemaChange)) for (const d of rows) d.schema_changed = true;
    return { ...cp, schema: current ?? saved };
  }

  private change(shape: Shape, op: string, version: string, values: Record<string, WireValue>): Change {
    const t = this.t.table;
    const keyValues = shape.key.map((k) => values[k] ?? null);
    const key = recordKey(keyValues);
    return {
      record: rowRecord(this.o.sourceId, t, shape.key, keyValues, { values, version, schema: shape.schemaVersion }, op),
      key,
      version,
      keyValues,
    };
  }
}

/** What the key store keeps of a change: key, version, key values (for reconciliation). */
function stored(c: Change): [string, string, string] {
  return [c.key, c.version, JSON.stringify(c.keyValues)];
}

/** bigint columns come as decimal text from tedious; NULL stays null. */
function text(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/** binary values (Buffer) as 0x hex; text already in that form passes. */
function hex(v: unknown, what: string): string {
  if (v instanceof Uint8Array) return binaryHex(v);
  if (typeof v === 'string' && /^0x[0-9a-fA-F]*$/.test(v)) return `0x${v.slice(2).toUpperCase()}`;
  throw new ErpEdgeError('ERP_COLLECTOR_FAILED', `${what}: expected binary, got ${v === null ? 'NULL' : typeof v}`);
}
