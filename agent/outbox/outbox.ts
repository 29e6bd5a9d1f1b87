import { EventEmitter, once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { openSqlite, type SqliteDb } from './sqlite.js';
import { ErpEdgeError } from '../../common/errors.js';
import { LogThrottle } from '../../common/log-throttle.js';
import { StateChangeLog } from '../../common/state-log.js';
import type { Logger } from '../../common/logger.js';
import { encodeRecordBody, recordLine, wireRecordV2 } from '../../common/wire-v2.js';
import { migrate } from './migrations.js';
import { chunkProblem, lineBody, lineBytes, lineProblem, lineSeq, quickLineProblem, linesToChunk, recordTsOr, renumberLine, splitChunk, toChunks, type ChunkDraft } from './chunk.js';
import { KeyVersions, type KeyVersionsInput, type StoredKey } from './key-versions.js';
import { DeadLetters, type DeadLetter, type DeadLetterInput, type DeadLetterQuery } from './dead-letter.js';
import { DiskRoom, walSizeLimit } from './disk-room.js';

export type CapPolicy = 'block' | 'drop_oldest';

/** Wire version of the record JSON this release writes into chunks (stored per chunk row). */
export const CHUNK_WIRE_VERSION = 2;

export interface OutboxOptions {
  path: string;
  /** FULL fsyncs every commit (a power cut loses nothing acknowledged to a collector). */
  synchronous: 'FULL' | 'NORMAL';
  maxBytes: number;
  maxEvents: number;
  capPolicy: CapPolicy;
  /** How long acked rows are kept before pruning. */
  replayWindowMs: number;
  /** Bytes kept in `<path>-reserve`, given up when a write finds the disk full (room for acks and pruning); 0: none. */
  diskReserveBytes?: number;
  /** Free space appends leave on the file system, beyond the room the outbox keeps for its WAL (disk-room.ts); 0: none. */
  diskMinFreeBytes?: number;
  logger?: Logger;
}

/** A record as handed over; the outbox assigns its seq. Fields as in wire v2 (common/wire-v2.ts). */
export interface NewRecord {
  id: string;
  source: string;
  data: unknown;
  /** Capture time; the append time when absent. */
  ts?: number;
  source_ts?: number | null;
  key?: string | null;
  txn?: string | null;
  correlation_id?: string | null;
}

/** A record already serialised without its seq (wire-v2 encodeRecordBody): the capture writer's form. */
export interface EncodedRecord {
  ts: number;
  body: string;
  /** UTF-8 length of `body`. */
  bytes: number;
}

/** A collector's progress marker, stored in the same transaction as its records. `value: null` deletes it. */
export interface Checkpoint {
  collector: string;
  key: string;
  value: unknown;
}

export interface PendingRow {
  seq: number;
  /** UTF-8 size of `payload`. */
  bytes: number;
  /** The record's wire JSON, ready to be spliced into a batch. */
  payload: string;
}

export interface StreamStatus {
  stream: string;
  epoch: string;
  lastSeq: number;
  ackedSeq: number;
  pending: number;
  pendingBytes: number;
  oldestPendingTs: number | null;
  lastAckAt: number | null;
  droppedUpto: number;
  dropped: number;
  /** Records of this stream now in the dead-letter table. */
  deadLetters: number;
  /** Records ever moved to dead-letter after a relay rejection. */
  deadLettered: number;
}

export interface SkipRow {
  first: number;
  last: number;
  reason: string;
}

export interface AppendOptions {
  /** Records refused at capture, stored in the dead-letter table in the same transaction. */
  deadLetters?: readonly DeadLetterInput[];
  /** Dead-letter rows re-appended by this append (resend): deleted in the same transaction. */
  consumeDeadLetters?: readonly number[];
  /** The place in the queue of appends waiting for room (see waitForRoom), when the caller has one. */
  ticket?: RoomTicket;
  /** Source keys and their versions (key-versions.ts), stored in the same transaction for this collector. */
  keyVersions?: { collector: string } & KeyVersionsInput;
}

export interface ResendProgress {
  stream: string;
  from: number;
  /** The stream's acked seq: the last one that can be resent. */
  upto: number;
  /** Retained records to resend. */
  total: number;
  resent: number;
  /** Acked seqs from `from` already pruned (not resent), if any. */
  notRetained: { from: number; to: number } | null;
}

/** What is wrong with a chunk row: the whole of it, or some of its lines (by index). */
type Quarantine = { whole: string } | { lines: Map<number, string> };

export interface RepairReport {
  /** Seq ranges moved to the dead-letter table, with the reason. */
  quarantined: { stream: string; from: number; to: number; reason: string }[];
  checkpointsRemoved: { collector: string; key: string }[];
  streamsFixed: { stream: string; nextSeq: number; was: number }[];
}

/** A place in the queue of appends waiting for room under `block` (opaque). */
export type RoomTicket = Record<string, never>;

interface ChunkRow {
  gid: number;
  stream: string;
  wire: number;
  first_seq: number;
  last_seq: number;
  min_ts: number;
  bytes: number;
  payload: string;
}

interface StreamRow {
  stream: string;
  next_seq: number;
  acked_seq: number;
  acked_at: number | null;
  dropped_upto: number;
  dropped_count: number;
  epoch: string | null;
  dead_lettered: number;
}

/**
 * Durable SQLite outbox. Every record a collector captures is appended here, in the same
 * transaction as the collector's checkpoint, with a contiguous per-stream seq. The forwarder
 * reads pending rows and acks them once the relay has stored them; acked rows are kept for
 * the replay window and pruned after. Records the relay refuses move to the dead-letter table,
 * leaving their seqs as skipped ranges.
 *
 * This module is the one place that opens SQLite on the agent.
 *
 * Events: 'appended' (stream), 'space' (usage fell under the caps), 'full' (caps reached),
 * 'freed' (rows were deleted: a writer waiting for room looks again).
 */
export class Outbox extends EventEmitter {
  readonly epoch: string;
  readonly path: string;
  readonly maxBytes: number;
  readonly maxEvents: number;
  readonly policy: CapPolicy;
  private readonly db: SqliteDb;
  private readonly log: Logger | undefined;
  private readonly replayWindowMs: number;
  private readonly synchronous: 'FULL' | 'NORMAL';
  /** The outbox's share of its file system (undefined in memory). */
  private readonly disk: DiskRoom | undefined;
  private bytes = 0;
  private events = 0;
  private droppedTotal = 0;
  private full = false;
  /** Appends wait for the disk (at its floor, or a write was refused with SQLITE_FULL) and none has gone in since: when, and why. */
  private diskFull: { since: number; message: string } | null = null;
  private closed = false;
  /** Appends waiting for room under `block`, in arrival order: while there are any, acked rows are pruned at once. */
  private readonly queue: RoomTicket[] = [];
  private readonly stmts;
  private readonly dead: DeadLetters;
  private readonly keys: KeyVersions;
  private readonly dropLog = new LogThrottle(60_000);
  /** Under a small cap the outbox can flip full ↔ space many times a second: one line a minute, with the count. */
  private readonly fullLog = new StateChangeLog<'full' | 'space'>(60_000, (state, suppressed) => {
    const at = { bytes: this.bytes, events: this.events, ...(suppressed > 0 ? { changes_not_logged: suppressed } : {}) };
    if (state === 'full') this.log?.warn(at, 'outbox full: collectors paused until the relay acks');
    else this.log?.info(at, 'outbox has space again: collectors resume');
  });
  /** Disk full / room again: one line a minute each, with how many were held back (a small disk cycles fast). */
  private readonly diskLog = new LogThrottle(60_000);
  /** The last chunk split by readPending: the forwarder reads a chunk in several batches. */
  private split: { stream: string; gid: number; firstSeq: number; lines: string[] } | undefined;

  constructor(opts: OutboxOptions) {
    super();
    this.path = opts.path;
    this.log = opts.logger;
    this.maxBytes = opts.maxBytes;
    this.maxEvents = opts.maxEvents;
    this.policy = opts.capPolicy;
    this.replayWindowMs = opts.replayWindowMs;
    this.synchronous = opts.synchronous;
    // Its page figures are read from the database when it measures, once the database is open.
    this.disk =
      opts.path === ':memory:'
        ? undefined
        : new DiskRoom({ path: opts.path, minFreeBytes: opts.diskMinFreeBytes ?? 0, reserveBytes: opts.diskReserveBytes ?? 0, pages: () => this.pages() });
    if (opts.path !== ':memory:') mkdirSync(dirname(opts.path), { recursive: true });
    this.db = openSqlite(opts.path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${this.synchronous}`);
      this.db.pragma('busy_timeout = 5000');
      // A WAL that grew past its usual size (a reader held it) is cut back when it starts over: the
      // disk's room for the outbox counts on the WAL's usual size (disk-room.ts).
      this.db.pragma(`journal_size_limit = ${walSizeLimit(this.db.pragma('page_size', { simple: true }) as number, this.db.pragma('wal_autocheckpoint', { simple: true }) as number)}`);
      migrate(this.db);
      this.epoch = this.loadEpoch();
      this.stmts = this.prepare();
      this.dead = new DeadLetters(this.db);
      this.keys = new KeyVersions(this.db);
      // Usage is read from the database, never carried over in counters: the file is the truth.
      this.refreshUsage();
      // At the caps already (a restart, lowered caps): acked rows go at once, then decide.
      this.updateFullState();
      if (this.disk && !this.disk.makeReserve()) this.diskFull = { since: Date.now(), message: 'no room on the disk for the outbox reserve' };
    } catch (err) {
      // A refused open (e.g. ERP_OUTBOX_SCHEMA) must not leave the file handle open.
      this.db.close();
      throw err;
    }
  }

  private loadEpoch(): string {
    const row = this.db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string } | undefined;
    if (row) return row.value;
    const epoch = randomUUID();
    this.db.prepare("INSERT INTO meta (key, value) VALUES ('epoch', ?), ('created_at', ?)").run(epoch, String(Date.now()));
    return epoch;
  }

  private prepare() {
    const db = this.db;
    return {
      getStream: db.prepare<[string], StreamRow>('SELECT * FROM streams WHERE stream = ?'),
      insertStream: db.prepare('INSERT INTO streams (stream, next_seq) VALUES (?, 1)'),
      setNextSeq: db.prepare('UPDATE streams SET next_seq = ? WHERE stream = ?'),
      insertChunk: db.prepare('INSERT INTO chunks (stream, first_seq, last_seq, min_ts, bytes, payload, wire) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      upsertCheckpoint: db.prepare(
        `INSERT INTO checkpoints (collector, key, value, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (collector, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      ),
      deleteCheckpoint: db.prepare('DELETE FROM checkpoints WHERE collector = ? AND key = ?'),
      getCheckpoint: db.prepare<[string, string], { value: string }>('SELECT value FROM checkpoints WHERE collector = ? AND key = ?'),
      listCheckpoints: db.prepare<[string], { key: string; value: string }>(
        'SELECT key, value FROM checkpoints WHERE collector = ? ORDER BY key',
      ),
      chunksAfter: db.prepare<[string, number], ChunkRow>('SELECT * FROM chunks WHERE stream = ? AND last_seq > ? ORDER BY last_seq'),
      anyAfter: db.prepare<[string, number], { one: number }>('SELECT 1 AS one FROM chunks WHERE stream = ? AND last_seq > ? LIMIT 1'),
      chunksOverlapping: db.prepare<[string, number, number], ChunkRow>(
        'SELECT * FROM chunks WHERE stream = ? AND last_seq >= ? AND first_seq <= ? ORDER BY last_seq',
      ),
      advanceAck: db.prepare('UPDATE streams SET acked_seq = ?, acked_at = ? WHERE stream = ?'),
      logAck: db.prepare('INSERT INTO ack_log (stream, upto, acked_at) VALUES (?, ?, ?)'),
      sizeRange: db.prepare<[string, number], { n: number; b: number }>(
        'SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n, coalesce(sum(bytes), 0) AS b FROM chunks WHERE stream = ? AND last_seq <= ?',
      ),
      deleteRange: db.prepare('DELETE FROM chunks WHERE stream = ? AND last_seq <= ?'),
      expiredAcks: db.prepare<[number], { stream: string; upto: number }>(
        'SELECT stream, max(upto) AS upto FROM ack_log WHERE acked_at <= ? GROUP BY stream',
      ),
      deleteAckLog: db.prepare('DELETE FROM ack_log WHERE acked_at <= ?'),
      allStreams: db.prepare<[], StreamRow>('SELECT * FROM streams ORDER BY stream'),
      oldestChunk: db.prepare<[], ChunkRow>('SELECT * FROM chunks ORDER BY gid LIMIT 1'),
      deleteGid: db.prepare('DELETE FROM chunks WHERE gid = ?'),
      trimChunk: db.prepare('UPDATE chunks SET first_seq = ?, min_ts = ?, bytes = ?, payload = ? WHERE gid = ?'),
      rewriteChunk: db.prepare('UPDATE chunks SET first_seq = ?, last_seq = ?, min_ts = ?, bytes = ?, payload = ? WHERE gid = ?'),
      straddling: db.prepare<[string, number, number], ChunkRow>('SELECT * FROM chunks WHERE stream = ? AND first_seq <= ? AND last_seq > ?'),
      anyAckedRow: db.prepare<[], { one: number }>(
        'SELECT 1 AS one FROM streams s JOIN chunks c ON c.stream = s.stream AND c.first_seq <= s.acked_seq LIMIT 1',
      ),
      markDropped: db.prepare(
        'UPDATE streams SET dropped_upto = max(dropped_upto, ?), dropped_count = dropped_count + ? WHERE stream = ?',
      ),
      skipsOverlapping: db.prepare<[string, number, number], { first_seq: number; last_seq: number; reason: string }>(
        'SELECT first_seq, last_seq, reason FROM skips WHERE stream = ? AND last_seq >= ? AND first_seq <= ? ORDER BY first_seq',
      ),
      insertSkip: db.prepare('INSERT INTO skips (stream, first_seq, last_seq, reason, at) VALUES (?, ?, ?, ?, ?)'),
      pruneSkips: db.prepare('DELETE FROM skips WHERE stream = ? AND last_seq <= ?'),
      addDeadLettered: db.prepare('UPDATE streams SET dead_lettered = dead_lettered + ? WHERE stream = ?'),
    };
  }

  /**
   * Appends records to a stream with contiguous seqs and stores the checkpoints, all in one
   * transaction: after a crash either both are there or neither is.
   */
  append(stream: string, records: readonly NewRecord[], checkpoints: Checkpoint | readonly Checkpoint[] = [], opts: AppendOptions = {}): { firstSeq: number; lastSeq: number } {
    const now = Date.now();
    const encoded = records.map((r): EncodedRecord => {
      const ts = r.ts ?? now;
      const body = encodeRecordBody({ ...r, ts });
      return { ts, body, bytes: Buffer.byteLength(body) };
    });
    return this.appendEncoded(stream, encoded, checkpoints, opts);
  }

  /**
   * Appends records already encoded by the capture writer (validated, measured, serialised once).
   * Under `block` an append of records that would take the outbox past a cap is refused
   * (ERP_OUTBOX_FULL), unless the outbox holds nothing else (an append bigger than a cap must not
   * wait forever): the capture writer waits for room first, so nothing goes past the cap.
   */
  appendEncoded(
    stream: string,
    records: readonly EncodedRecord[],
    checkpoints: Checkpoint | readonly Checkpoint[] = [],
    opts: AppendOptions = {},
  ): { firstSeq: number; lastSeq: number } {
    this.assertOpen();
    this.checkDisk(stream, encodedBytes(records) + deadLetterBytes(opts.deadLetters));
    if (records.length > 0 && !this.hasRoomFor(stream, records.length, encodedBytes(records), opts.ticket)) {
      throw new ErpEdgeError(
        'ERP_OUTBOX_FULL',
        `no room in the outbox for ${records.length} records (${this.events} of ${this.maxEvents} events, ${this.bytes} of ${this.maxBytes} bytes): wait for room before appending`,
        { stream, events: this.events, bytes: this.bytes },
      );
    }
    const cps = Array.isArray(checkpoints) ? checkpoints : [checkpoints as Checkpoint];
    const now = Date.now();
    const result = this.db.transaction(() => {
      const first = this.nextSeq(stream);
      let added = 0;
      for (const c of toChunks(records, first)) {
        this.insertChunk(stream, c);
        added += c.bytes;
      }
      const seq = first + records.length;
      if (records.length > 0) this.stmts.setNextSeq.run(seq, stream);
      this.writeCheckpoints(cps, now);
      if (opts.deadLetters?.length) this.dead.insert(opts.deadLetters, now);
      if (opts.consumeDeadLetters?.length) this.dead.delete(opts.consumeDeadLetters);
      if (opts.keyVersions) this.keys.write(opts.keyVersions.collector, opts.keyVersions);
      this.bytes += added;
      this.events += records.length;
      if (this.policy === 'drop_oldest' && this.overCap()) this.dropOldest();
      return { firstSeq: first, lastSeq: seq - 1 };
    });
    let r: { firstSeq: number; lastSeq: number };
    try {
      r = result();
    } catch (err) {
      // The transaction rolled back: re-read usage so the counters match the file again.
      this.refreshUsage();
      throw this.diskFullError(err, stream);
    }
    // The records are committed: what follows must not make the caller believe they were not.
    this.afterCommit(() => {
      if (records.length > 0) this.emit('appended', stream);
    });
    this.afterCommit(() => this.updateFullState());
    return r;
  }

  private insertChunk(stream: string, c: ChunkDraft, wire = CHUNK_WIRE_VERSION): void {
    this.stmts.insertChunk.run(stream, c.firstSeq, c.lastSeq, c.minTs, c.bytes, c.payload, wire);
  }

  private afterCommit(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log?.error({ err: { message: (err as Error).message } }, 'outbox: work after a commit failed (the commit stands)');
    }
  }

  /**
   * Appends stop at the disk's floor (disk-room.ts), before SQLite can run out of space: the room
   * kept there is what acks, pruning and checkpoints write in. Throws ERP_OUTBOX_DISK_FULL (nothing
   * written) while the floor would be crossed; the capture writer waits and retries, as for a full
   * outbox. After a write found the disk full, appends resume only once the reserve is made again.
   */
  private checkDisk(stream: string, bytes: number): void {
    if (!this.disk) return;
    // Checkpoints alone are small writes, like acks: they go in the room the floor keeps.
    if (bytes === 0) return;
    const recovering = this.diskFull !== null;
    if (this.disk.roomFor(bytes, recovering) && (!recovering || this.disk.makeReserve())) {
      if (recovering) this.diskHasRoom();
      return;
    }
    const m = this.disk.measure(bytes);
    const message = this.disk.describe(m);
    this.enterDiskFull(message);
    this.pruneForRoom();
    throw new ErpEdgeError('ERP_OUTBOX_DISK_FULL', `the disk holding the outbox ${this.path} is too full to append: nothing was written (${message})`, {
      stream,
      path: this.path,
      free_bytes: m.fsFree,
    });
  }

  /**
   * The disk is full (at the floor, or SQLite's SQLITE_FULL): the outbox counts as full until an
   * append fits again. Acks prune at once meanwhile, whatever the replay window (see ack).
   */
  private enterDiskFull(message: string, reserveReleased = false): void {
    this.disk?.forget();
    if (this.diskFull) return;
    this.diskFull = { since: Date.now(), message };
    const t = this.diskLog.take('full');
    if (t) {
      this.log?.error(
        { path: this.path, reason: message, ...(reserveReleased ? { reserve_released: true } : {}), suppressed: t.suppressed },
        'outbox: the disk is full; collectors paused until acked records are pruned or space is freed',
      );
    }
    this.emit('full');
  }

  /** Rows acked and kept for the replay window give their pages back now: appends resume into them. */
  private pruneForRoom(): void {
    this.afterCommit(() => {
      if (this.stmts.anyAckedRow.get()) this.pruneAcked(true);
    });
  }

  /**
   * SQLite's SQLITE_FULL on an append (something else filled the file system past the floor) as
   * ERP_OUTBOX_DISK_FULL: nothing was written (the transaction rolled back, the file is intact).
   */
  private diskFullError(err: unknown, stream: string): unknown {
    if (!isDiskFull(err)) return err;
    this.enterDiskFull((err as Error).message);
    this.pruneForRoom();
    return new ErpEdgeError('ERP_OUTBOX_DISK_FULL', `the disk holding the outbox ${this.path} is full: nothing was written (${(err as Error).message})`, { stream, path: this.path });
  }

  /**
   * A write the outbox must make even on a full disk (acks, pruning): when the file system refuses
   * it, the reserve file is given up and the write tried once more in its room. The reserve is made
   * again before appends resume (checkDisk). With no reserve left to give, the refusal is
   * ERP_OUTBOX_DISK_FULL saying what was not written (`what`; the transaction rolled back).
   */
  private evenWhenFull<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!isDiskFull(err)) throw err;
      if (!this.disk?.releaseReserve()) throw this.fullWriteError(err, what);
      this.enterDiskFull((err as Error).message, true);
      this.log?.warn({ path: this.path, reserve_bytes: this.disk.reserveBytes }, 'outbox: the disk reserve was given up so acks and pruning can go on');
      try {
        return fn();
      } catch (again) {
        throw isDiskFull(again) ? this.fullWriteError(again, what) : again;
      }
    }
  }

  private fullWriteError(err: unknown, what: string): ErpEdgeError {
    const message = (err as Error).message;
    this.enterDiskFull(message);
    return new ErpEdgeError('ERP_OUTBOX_DISK_FULL', `the disk holding the outbox ${this.path} is full: ${what} (${message})`, { path: this.path }, { cause: err });
  }

  /** The database's page figures, for the disk's room (disk-room.ts). */
  private pages() {
    const n = (pragma: string) => this.db.pragma(pragma, { simple: true }) as number;
    return { pageSize: n('page_size'), pageCount: n('page_count'), freelistCount: n('freelist_count'), walAutocheckpoint: n('wal_autocheckpoint') };
  }

  private diskHasRoom(): void {
    const was = this.diskFull;
    if (!was) return;
    this.diskFull = null;
    const t = this.diskLog.take('room');
    if (t) this.log?.info({ path: this.path, full_for_ms: Date.now() - was.since, suppressed: t.suppressed }, 'outbox: the disk has room again; collectors resume');
    if (!this.full) this.emit('space');
  }

  /** Since when appends have waited for the disk (see checkDisk), and why; null when they do not (an append went in since). */
  diskFullState(): { since: number; message: string } | null {
    return this.diskFull ? { ...this.diskFull } : null;
  }

  /** Stores checkpoints alone (state changes that carry no records). */
  setCheckpoint(checkpoints: Checkpoint | readonly Checkpoint[]): void {
    this.assertOpen();
    const cps = Array.isArray(checkpoints) ? checkpoints : [checkpoints as Checkpoint];
    this.db.transaction(() => this.writeCheckpoints(cps, Date.now()))();
  }

  getCheckpoint<T = unknown>(collector: string, key: string): T | undefined {
    const row = this.stmts.getCheckpoint.get(collector, key);
    return row ? (JSON.parse(row.value) as T) : undefined;
  }

  /** The versions stored for these keys (absent: never captured). */
  getKeyVersions(collector: string, scope: string, keys: readonly string[]): Map<string, string> {
    this.assertOpen();
    return this.keys.get(collector, scope, keys);
  }

  /** Stored keys of a scope after `after` ('' for the first page), in key order. */
  listKeys(collector: string, scope: string, after: string, limit: number): StoredKey[] {
    this.assertOpen();
    return this.keys.keys(collector, scope, after, limit);
  }

  keyVersionCount(collector: string, scope: string): number {
    return this.keys.size(collector, scope);
  }

  listCheckpoints<T = unknown>(collector: string): { key: string; value: T }[] {
    return this.stmts.listCheckpoints.all(collector).map((r) => ({ key: r.key, value: JSON.parse(r.value) as T }));
  }

  /**
   * Pending records after `afterSeq`, in seq order, at most `maxRecords` and (beyond the first)
   * `maxBytes`. Seqs can be missing between rows (dropped, dead-lettered): see skipsBetween.
   */
  readPending(stream: string, afterSeq: number, maxRecords: number, maxBytes = Number.POSITIVE_INFINITY): PendingRow[] {
    this.assertOpen();
    for (;;) {
      const rows: PendingRow[] = [];
      let total = 0;
      let damaged: { chunk: ChunkRow; bad: Quarantine } | undefined;
      // Lazily, chunk by chunk: a batch usually needs one or two of them, not the whole backlog.
      read: for (const c of this.stmts.chunksAfter.iterate(stream, afterSeq)) {
        const lines = this.linesOf(c);
        if (!Array.isArray(lines)) {
          damaged = { chunk: c, bad: lines };
          break;
        }
        for (let i = Math.max(0, afterSeq + 1 - c.first_seq); i < lines.length; i++) {
          const payload = lines[i]!;
          const bytes = Buffer.byteLength(payload);
          if (rows.length > 0 && total + bytes > maxBytes) break read;
          rows.push({ seq: c.first_seq + i, bytes, payload });
          total += bytes;
          if (rows.length >= maxRecords) break read;
        }
      }
      if (!damaged) return rows;
      // A row that cannot be sent as it is (a damaged file): it goes to the dead-letter table with
      // the reason, its seqs become a skipped range, and reading goes on. Never a loop on one row.
      // (The statement above is finished before this writes: SQLite allows no write mid-iteration.)
      this.quarantineChunks([damaged]);
    }
  }

  /** A chunk's lines, each checked once when the chunk is first split; the problems instead when any. */
  private linesOf(c: ChunkRow): string[] | Quarantine {
    const cached = this.split;
    // gids are reused after deletes: the stream is part of the key, and deletes clear the cache.
    if (cached && cached.gid === c.gid && cached.stream === c.stream && cached.firstSeq === c.first_seq) return cached.lines;
    // Split once and check each line cheaply (a parse per record here cost the agent ~40 % more CPU
    // per event in durable-e2e); only a chunk that fails goes through the full check.
    const lines = typeof c.payload === 'string' ? splitChunk(c.payload) : undefined;
    const fine = lines !== undefined && lines.length === c.last_seq - c.first_seq + 1 && lines.every((l, i) => quickLineProblem(l, c.first_seq + i) === undefined);
    if (!fine) {
      const bad = checkChunk(c, quickLineProblem);
      if (bad || !lines) return bad ?? { whole: 'chunk payload is not text' };
    }
    this.split = { stream: c.stream, gid: c.gid, firstSeq: c.first_seq, lines: lines! };
    return lines!;
  }

  /**
   * Moves damaged chunk rows (or their damaged lines) to the dead-letter table (origin `repair`,
   * with the reason), leaving their pending seqs as skipped ranges (`dead_letter`), as for a record
   * the relay refused. Good lines of a chunk stay, as chunks of consecutive records. Returns how
   * many seqs were quarantined.
   */
  private quarantineChunks(found: readonly { chunk: ChunkRow; bad: Quarantine }[]): number {
    const now = Date.now();
    const run = this.db.transaction(() => {
      let n = 0;
      for (const { chunk: c, bad } of found) {
        const s = this.stmts.getStream.get(c.stream);
        const acked = s?.acked_seq ?? 0;
        const epoch = s?.epoch ?? this.epoch;
        this.split = undefined;
        this.stmts.deleteGid.run(c.gid);
        this.bytes -= c.bytes;
        this.events -= c.last_seq - c.first_seq + 1;
        const seqs: number[] = [];
        const dead: DeadLetterInput[] = [];
        if ('whole' in bad) {
          for (let q = c.first_seq; q <= c.last_seq; q++) seqs.push(q);
          dead.push({ stream: c.stream, epoch, seq: c.first_seq, origin: 'repair', reason: `${bad.whole} (seqs ${c.first_seq}..${c.last_seq})`, payload: payloadText(c.payload) });
        } else {
          const lines = splitChunk(c.payload);
          let runStart = -1;
          const flush = (end: number) => {
            if (runStart < 0) return;
            const kept = linesToChunk(lines.slice(runStart, end), c.first_seq + runStart, c.min_ts);
            this.insertChunk(c.stream, kept, c.wire);
            this.bytes += kept.bytes;
            this.events += end - runStart;
            runStart = -1;
          };
          for (let i = 0; i < lines.length; i++) {
            const reason = bad.lines.get(i);
            if (reason === undefined) {
              if (runStart < 0) runStart = i;
              continue;
            }
            flush(i);
            seqs.push(c.first_seq + i);
            dead.push({ stream: c.stream, epoch, seq: c.first_seq + i, origin: 'repair', reason, payload: lines[i]! });
          }
          flush(lines.length);
        }
        this.dead.insert(dead, now);
        // Acked seqs the relay holds already: only the pending ones are declared skipped.
        for (const r of runsOf(seqs.filter((q) => q > acked))) this.stmts.insertSkip.run(c.stream, r.from, r.to, 'dead_letter', now);
        n += seqs.length;
        this.log?.error(
          { stream: c.stream, first: c.first_seq, last: c.last_seq, quarantined: seqs.length, reason: 'whole' in bad ? bad.whole : [...bad.lines.values()][0] },
          'outbox: damaged records moved to the dead-letter table (edge-agent deadletter list); the stream goes on past them',
        );
      }
      return n;
    });
    try {
      const n = run();
      this.afterCommit(() => this.updateFullState());
      this.afterCommit(() => this.emit('freed'));
      return n;
    } catch (err) {
      this.refreshUsage();
      throw err;
    }
  }

  /**
   * `outbox repair` (the agent stopped): every chunk row checked in full — readable, its seqs, each
   * record valid JSON meeting the wire schema — and what fails moved to the dead-letter table;
   * checkpoints that are not JSON removed (the collector starts over there; the relay recognises
   * what it captures again by id); a stream's next seq raised above its highest stored one.
   */
  repair(): RepairReport {
    this.assertOpen();
    const report: RepairReport = { quarantined: [], checkpointsRemoved: [], streamsFixed: [] };
    const page = this.db.prepare<[number], ChunkRow>('SELECT * FROM chunks WHERE gid > ? ORDER BY gid LIMIT 200');
    let after = 0;
    for (;;) {
      const rows = page.all(after);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.gid;
      const found: { chunk: ChunkRow; bad: Quarantine }[] = [];
      for (const c of rows) {
        const bad = checkChunk(c, fullLineProblem);
        if (!bad) continue;
        found.push({ chunk: c, bad });
        if ('whole' in bad) report.quarantined.push({ stream: c.stream, from: c.first_seq, to: c.last_seq, reason: bad.whole });
        else for (const [i, reason] of bad.lines) report.quarantined.push({ stream: c.stream, from: c.first_seq + i, to: c.first_seq + i, reason });
      }
      // Rows re-inserted for the good lines get new gids above `after`: checked again, and found good.
      if (found.length > 0) this.quarantineChunks(found);
    }
    this.db.transaction(() => {
      for (const cp of this.db.prepare('SELECT collector, key, value FROM checkpoints').all() as { collector: string; key: string; value: unknown }[]) {
        let ok = typeof cp.value === 'string';
        if (ok) {
          try {
            JSON.parse(cp.value as string);
          } catch {
            ok = false;
          }
        }
        if (ok) continue;
        this.stmts.deleteCheckpoint.run(cp.collector, cp.key);
        report.checkpointsRemoved.push({ collector: cp.collector, key: cp.key });
      }
      const heads = this.db.prepare('SELECT s.stream, s.next_seq, max(c.last_seq) AS top FROM streams s JOIN chunks c ON c.stream = s.stream GROUP BY s.stream').all() as {
        stream: string;
        next_seq: number;
        top: number;
      }[];
      for (const h of heads) {
        if (h.top < h.next_seq) continue;
        this.stmts.setNextSeq.run(h.top + 1, h.stream);
        report.streamsFixed.push({ stream: h.stream, nextSeq: h.top + 1, was: h.next_seq });
      }
    })();
    if (report.checkpointsRemoved.length > 0) this.log?.warn({ checkpoints: report.checkpointsRemoved }, 'outbox repair: unreadable checkpoints removed');
    return report;
  }

  /**
   * `outbox resend`: appends again, as new records (new seqs, same ids and contents), the records of
   * `stream` from seq `from` that were acked and are still retained (the replay window): the relay
   * recognises those it holds by id and stores those it lost. Pages of `pageSize` records, one
   * transaction each; `progress` after each. Pending records are not copied (they go out anyway).
   * Stops with ERP_OUTBOX_FULL when a page does not fit under `block` (what was resent stands).
   */
  resendRetained(
    stream: string,
    from: number,
    progress?: (p: ResendProgress) => void,
    pageSize = 1_000,
  ): ResendProgress {
    this.assertOpen();
    const s = this.stmts.getStream.get(stream);
    if (!s) throw new ErpEdgeError('ERP_OUTBOX_SEQ', `no stream ${stream} in the outbox`, { stream });
    const upto = s.acked_seq;
    const firstHeld = (this.db.prepare('SELECT min(first_seq) AS m FROM chunks WHERE stream = ?').get(stream) as { m: number | null }).m;
    const start = Math.max(from, firstHeld ?? upto + 1);
    const p: ResendProgress = {
      stream,
      from,
      upto,
      // Records actually held in [start, upto] (dead-lettered seqs carry none).
      total: (
        this.db
          .prepare('SELECT coalesce(sum(min(last_seq, ?) - max(first_seq, ?) + 1), 0) AS n FROM chunks WHERE stream = ? AND last_seq >= ? AND first_seq <= ?')
          .get(upto, start, stream, start, upto) as { n: number }
      ).n,
      resent: 0,
      notRetained: firstHeld === null ? (upto >= from ? { from, to: upto } : null) : firstHeld > from ? { from, to: Math.min(firstHeld - 1, upto) } : null,
    };
    let after = start - 1;
    while (after < upto) {
      const rows = this.readPending(stream, after, Math.min(pageSize, upto - after)).filter((r) => r.seq <= upto);
      if (rows.length === 0) break;
      const records: EncodedRecord[] = rows.map((r) => {
        const body = lineBody(r.payload);
        return { ts: recordTsOr(r.payload, Date.now()), body, bytes: Buffer.byteLength(body) };
      });
      this.appendEncoded(stream, records);
      p.resent += rows.length;
      after = rows[rows.length - 1]!.seq;
      progress?.({ ...p });
    }
    this.log?.warn({ stream, from, upto, resent: p.resent, not_retained: p.notRetained }, 'outbox resend: retained records appended again (the relay recognises what it holds by id)');
    return p;
  }

  /** Whether any record of the stream has a seq above `seq`. */
  hasRecordsAfter(stream: string, seq: number): boolean {
    return this.stmts.anyAfter.get(stream, seq) !== undefined;
  }

  /** Skipped seq ranges (dead-lettered) overlapping [from, to]. */
  skipsBetween(stream: string, from: number, to: number): SkipRow[] {
    return this.stmts.skipsOverlapping.all(stream, from, to).map((s) => ({ first: s.first_seq, last: s.last_seq, reason: s.reason }));
  }

  /** The relay has stored everything up to `upto`: advance the cursor (rows are pruned later). */
  ack(stream: string, upto: number): number {
    this.assertOpen();
    const now = Date.now();
    // An ack must be recorded even on a full disk: it is what lets pruning make room.
    const newly = this.evenWhenFull(`the ack up to ${upto} of ${stream} was not recorded`, () => this.withoutFsync(() => {
      const s = this.stmts.getStream.get(stream);
      // An unknown stream has no seqs: any upto > 0 is beyond its (empty) end.
      if (upto <= (s?.acked_seq ?? 0)) return 0;
      const last = s ? s.next_seq - 1 : 0;
      if (!s || upto > last) {
        throw new ErpEdgeError('ERP_OUTBOX_SEQ', `ack for ${stream} up to ${upto} is beyond the last appended seq ${last}`, {
          stream,
          upto,
          last,
        });
      }
      this.stmts.advanceAck.run(upto, now, stream);
      this.stmts.logAck.run(stream, upto, now);
      this.stmts.pruneSkips.run(stream, upto);
      return upto - s.acked_seq;
    }));
    // Under cap pressure acked rows go at once, whatever the replay window (the ack stands if this fails).
    if (newly > 0 && (this.full || this.diskFull || this.queue.length > 0)) this.afterCommit(() => this.pruneAcked(true));
    return newly;
  }

  /**
   * Runs a transaction without its own fsync. For acks only: losing the last acks in a power cut
   * means those events are sent again and the relay skips them, never that one is lost. WAL keeps
   * the commit ordered before the next FULL commit, which fsyncs it too.
   */
  private withoutFsync<T>(fn: () => T): T {
    if (this.synchronous !== 'FULL') return this.db.transaction(fn)();
    this.db.pragma('synchronous = NORMAL');
    try {
      return this.db.transaction(fn)();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /**
   * Moves sent, unacked records the relay refused into the dead-letter table with the reason,
   * leaving their seqs as skipped ranges (declared to the relay until acked past). Ranges are
   * clipped to the pending part of the stream. Returns how many records moved.
   */
  deadLetterPending(stream: string, ranges: readonly { from: number; to: number; reason: string }[]): number {
    this.assertOpen();
    const now = Date.now();
    const run = this.db.transaction(() => {
      const s = this.stmts.getStream.get(stream);
      if (!s) return 0;
      const epoch = s.epoch ?? this.epoch;
      let moved = 0;
      for (const r of ranges) {
        const from = Math.max(r.from, s.acked_seq + 1);
        const to = Math.min(r.to, s.next_seq - 1);
        if (to < from) continue;
        const out = this.cutRange(stream, from, to);
        const seqs = out.map(lineSeq);
        this.dead.insert(
          out.map((line, i) => ({ stream, epoch, seq: seqs[i]!, origin: 'relay' as const, reason: r.reason, payload: line })),
          now,
        );
        // Only the seqs moved now: a repeated (redelivered) rejection finds them gone and adds nothing.
        for (const run of runsOf(seqs)) this.stmts.insertSkip.run(stream, run.from, run.to, 'dead_letter', now);
        moved += out.length;
      }
      if (moved > 0) this.stmts.addDeadLettered.run(moved, stream);
      return moved;
    });
    try {
      const moved = run();
      if (moved > 0) {
        this.afterCommit(() => this.updateFullState());
        this.afterCommit(() => this.emit('freed'));
      }
      return moved;
    } catch (err) {
      this.refreshUsage();
      throw err;
    }
  }

  /** Removes the records with seqs in [from, to] from the chunks (splitting chunks as needed); returns their lines. */
  private cutRange(stream: string, from: number, to: number): string[] {
    const out: string[] = [];
    this.split = undefined;
    for (const c of this.stmts.chunksOverlapping.all(stream, from, to)) {
      const lines = splitChunk(c.payload);
      const lo = Math.max(from, c.first_seq) - c.first_seq;
      const hi = Math.min(to, c.last_seq) - c.first_seq;
      const before = lines.slice(0, lo);
      const taken = lines.slice(lo, hi + 1);
      const after = lines.slice(hi + 1);
      out.push(...taken);
      const freed = taken.reduce((n, l) => n + Buffer.byteLength(l), 0);
      this.bytes -= freed;
      this.events -= taken.length;
      if (before.length > 0) {
        const head = linesToChunk(before, c.first_seq);
        this.stmts.rewriteChunk.run(head.firstSeq, head.lastSeq, head.minTs, head.bytes, head.payload, c.gid);
      } else {
        this.stmts.deleteGid.run(c.gid);
      }
      // The split-off tail keeps the wire version its lines were written with.
      if (after.length > 0) this.insertChunk(stream, linesToChunk(after, c.first_seq + hi + 1), c.wire);
    }
    return out;
  }

  /**
   * The relay holds other records under this stream's seqs from `from` on: the outbox went back in
   * time under the same epoch (VM snapshot, backup restore). The stream moves to a new epoch: what
   * is below `from` the relay holds already (it was resent and matched), so it goes; what is from
   * `from` on is renumbered so that `from` becomes 1. Holes (dead-lettered, dropped) move with the
   * records and are declared to the relay in the new epoch like any other. Returns the new epoch.
   */
  rebaseStream(stream: string, from: number): string {
    this.assertOpen();
    const epoch = randomUUID();
    const now = Date.now();
    const run = this.db.transaction(() => {
      const s = this.stmts.getStream.get(stream);
      if (!s) throw new ErpEdgeError('ERP_OUTBOX_SEQ', `cannot rebase unknown stream ${stream}`, { stream });
      // Below `from`: held by the relay. Delete whole chunks, then trim the one `from` falls inside.
      const size = this.stmts.sizeRange.get(stream, from - 1)!;
      this.stmts.deleteRange.run(stream, from - 1);
      this.bytes -= size.b;
      this.events -= size.n;
      const straddling = this.stmts.straddling.get(stream, from - 1, from - 1);
      if (straddling) this.trimHead(straddling, from - straddling.first_seq);
      // Renumber the rest from 1, ascending, so no row ever takes a last_seq still held by another.
      const delta = 1 - from;
      for (const c of this.stmts.chunksAfter.all(stream, 0)) {
        const lines = splitChunk(c.payload).map((l, i) => renumberLine(l, c.first_seq + delta + i));
        const next = linesToChunk(lines, c.first_seq + delta);
        this.stmts.rewriteChunk.run(next.firstSeq, next.lastSeq, c.min_ts, next.bytes, next.payload, c.gid);
        this.bytes += next.bytes - c.bytes;
      }
      // Holes above `from` stay holes in the new epoch (declared to the relay as skipped, by reason);
      // a skipped range that straddles `from` keeps its part from `from` on.
      // Re-inserted, not updated in place: an UPDATE shifting the key down can collide with a row
      // it has not moved yet, depending on the order SQLite visits them.
      const skips = this.db.prepare('SELECT first_seq, last_seq, reason, at FROM skips WHERE stream = ? AND last_seq >= ? ORDER BY first_seq').all(stream, from) as {
        first_seq: number;
        last_seq: number;
        reason: string;
        at: number;
      }[];
      this.db.prepare('DELETE FROM skips WHERE stream = ?').run(stream);
      for (const k of skips) this.stmts.insertSkip.run(stream, Math.max(k.first_seq, from) + delta, k.last_seq + delta, k.reason, k.at);
      this.db.prepare('DELETE FROM ack_log WHERE stream = ?').run(stream);
      this.db
        .prepare(
          'UPDATE streams SET epoch = ?, next_seq = max(1, next_seq + ?), acked_seq = 0, acked_at = NULL, dropped_upto = max(0, dropped_upto + ?), rebased_at = ? WHERE stream = ?',
        )
        .run(epoch, delta, delta, now, stream);
      this.split = undefined;
    });
    try {
      run();
    } catch (err) {
      this.refreshUsage();
      throw err;
    }
    this.afterCommit(() => this.updateFullState());
    this.afterCommit(() => this.emit('freed'));
    return epoch;
  }

  /** The epoch a stream's seqs belong to (the outbox epoch unless the stream was rebased). */
  streamEpoch(stream: string): string {
    return this.stmts.getStream.get(stream)?.epoch ?? this.epoch;
  }

  /** Deletes acked rows older than the replay window (or all acked rows when `all`). Returns rows deleted. */
  pruneAcked(all = false, now = Date.now()): number {
    this.assertOpen();
    const deleted = this.deleteAcked(all, now);
    this.updateFullState();
    if (deleted > 0) this.emit('freed');
    return deleted;
  }

  private deleteAcked(all: boolean, now: number): number {
    const cutoff = now - this.replayWindowMs;
    const run = this.db.transaction(() => {
      let n = 0;
      const targets = all
        ? this.stmts.allStreams.all().map((s) => ({ stream: s.stream, upto: s.acked_seq }))
        : this.stmts.expiredAcks.all(cutoff);
      for (const t of targets) n += this.deleteUpTo(t.stream, t.upto);
      this.stmts.deleteAckLog.run(all ? Number.MAX_SAFE_INTEGER : cutoff);
      return n;
    });
    // Pruning is how a full disk gets room back: it must go through even then.
    return this.evenWhenFull('acked records were not pruned', () => {
      try {
        return run();
      } catch (err) {
        // Rolled back: the counters were moved inside the transaction, re-read them.
        this.refreshUsage();
        throw err;
      }
    });
  }

  streamStatus(): StreamStatus[] {
    return readStreamStatus(this.db, this.epoch);
  }

  /** `full`: at a cap under `block`, or appends wait for the disk (see diskFullState). */
  usage(): { bytes: number; events: number; dropped: number; full: boolean } {
    return { bytes: this.bytes, events: this.events, dropped: this.droppedTotal, full: this.full || this.diskFull !== null };
  }

  isFull(): boolean {
    return this.full || this.diskFull !== null;
  }

  /**
   * Whether `records` records whose bodies are `bytes` bytes can be appended to `stream` now without
   * going past a cap (always under drop_oldest, and when the outbox holds no record at all). Acked
   * rows kept for the replay window give way first. While appends wait for room, they go first, in
   * the order they came (`ticket`: the caller's place in that queue): a stream of small appends
   * cannot starve a big one.
   */
  hasRoomFor(stream: string, records: number, bytes: number, ticket?: RoomTicket): boolean {
    if (this.policy !== 'block') return true;
    if (this.queue.length > 0 && this.queue[0] !== ticket) return false;
    // Far from the caps (the usual case): an upper bound of the prefixes settles it, no lookup.
    if (this.events + records <= this.maxEvents && this.bytes + bytes + records * 24 <= this.maxBytes) return true;
    const size = bytes + this.seqPrefixBytes(stream, records);
    const fits = () => this.events === 0 || (this.events + records <= this.maxEvents && this.bytes + size <= this.maxBytes);
    if (fits()) return true;
    if (this.stmts.anyAckedRow.get()) this.pruneAcked(true);
    return fits();
  }

  /**
   * Resolves once the append fits, with a ticket that keeps its place at the head of the queue:
   * the caller appends with it (`appendEncoded(…, { ticket })`) in the same tick, then releases
   * it, and the next in line looks.
   */
  async waitForRoom(stream: string, records: number, bytes: number, signal?: AbortSignal): Promise<RoomTicket> {
    const ticket: RoomTicket = {};
    this.queue.push(ticket);
    try {
      while (!this.closed && !this.hasRoomFor(stream, records, bytes, ticket)) {
        await once(this, 'freed', { signal });
      }
      return ticket;
    } catch (err) {
      this.releaseRoom(ticket);
      throw err;
    }
  }

  /** Gives up a place in the queue of appends waiting for room (after appending, or giving up). */
  releaseRoom(ticket: RoomTicket): void {
    const i = this.queue.indexOf(ticket);
    if (i < 0) return;
    this.queue.splice(i, 1);
    if (i === 0 && this.queue.length > 0) setImmediate(() => this.emit('freed'));
  }

  /** UTF-8 bytes of the `{"seq":N,` prefixes the next `records` records of a stream get. */
  private seqPrefixBytes(stream: string, records: number): number {
    const first = this.stmts.getStream.get(stream)?.next_seq ?? 1;
    let n = 0;
    for (let digits = String(first).length, seq = first; seq < first + records; digits++) {
      const upto = Math.min(first + records, 10 ** digits);
      n += (upto - seq) * (8 + digits);
      seq = upto;
    }
    return n;
  }

  /** Appends now waiting for room (shown by status). */
  get waitingAppends(): number {
    return this.queue.length;
  }

  droppedUpto(stream: string): number {
    return this.stmts.getStream.get(stream)?.dropped_upto ?? 0;
  }

  ackedSeq(stream: string): number {
    return this.stmts.getStream.get(stream)?.acked_seq ?? 0;
  }

  lastSeq(stream: string): number {
    return (this.stmts.getStream.get(stream)?.next_seq ?? 1) - 1;
  }

  streamNames(): string[] {
    return this.stmts.allStreams.all().map((s) => s.stream);
  }

  /** The dead-letter table (list, discard; resend goes through append with consumeDeadLetters). */
  get deadLetters(): DeadLetters {
    this.assertOpen();
    return this.dead;
  }

  /** Wire versions of the chunks of a stream, oldest first (upgrade checks and tests). */
  chunkWireVersions(stream: string): number[] {
    return (this.db.prepare('SELECT DISTINCT wire FROM chunks WHERE stream = ? ORDER BY wire').all(stream) as { wire: number }[]).map((r) => r.wire);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.fullLog.flush();
    this.db.close();
    // The reserve is the outbox's own: it goes with it (made again at the next open).
    this.disk?.removeReserve();
    this.emit('space');
    this.emit('freed'); // release waiters
  }

  private nextSeq(stream: string): number {
    const s = this.stmts.getStream.get(stream);
    if (s) return s.next_seq;
    this.stmts.insertStream.run(stream);
    return 1;
  }

  private writeCheckpoints(cps: readonly Checkpoint[], now: number): void {
    for (const cp of cps) {
      if (cp.value === null || cp.value === undefined) this.stmts.deleteCheckpoint.run(cp.collector, cp.key);
      else this.stmts.upsertCheckpoint.run(cp.collector, cp.key, JSON.stringify(cp.value), now);
    }
  }

  /** Deletes a stream's records up to `upto`: whole chunks, then the head of the one it falls inside. */
  private deleteUpTo(stream: string, upto: number): number {
    const size = this.stmts.sizeRange.get(stream, upto)!;
    if (size.n > 0) {
      this.stmts.deleteRange.run(stream, upto);
      this.split = undefined;
    }
    this.bytes -= size.b;
    this.events -= size.n;
    let n = size.n;
    const straddling = this.stmts.straddling.get(stream, upto, upto);
    if (straddling) n += this.trimHead(straddling, upto - straddling.first_seq + 1);
    return n;
  }

  /** Removes the first `k` records of a chunk (all of them deletes it); returns how many went. */
  private trimHead(c: ChunkRow, k: number): number {
    const n = c.last_seq - c.first_seq + 1;
    this.split = undefined;
    if (k >= n) {
      this.stmts.deleteGid.run(c.gid);
      this.events -= n;
      this.bytes -= c.bytes;
      return n;
    }
    const lines = splitChunk(c.payload);
    let freed = 0;
    for (let i = 0; i < k; i++) freed += Buffer.byteLength(lines[i]!);
    const rest = lines.slice(k);
    this.stmts.trimChunk.run(c.first_seq + k, Math.min(...rest.map((l) => recordTsOr(l, c.min_ts))), c.bytes - freed, rest.join('\n'), c.gid);
    this.events -= k;
    this.bytes -= freed;
    return k;
  }

  /**
   * drop_oldest: acked records go first, then the oldest pending ones, chunk by chunk (the last
   * one trimmed record by record, so no more is dropped than needed); every drop is counted.
   */
  private dropOldest(): void {
    const acked = new Map(this.stmts.allStreams.all().map((s) => [s.stream, s.acked_seq]));
    for (const [stream, upto] of acked) this.deleteUpTo(stream, upto);
    const dropped = new Map<string, { upto: number; n: number }>();
    const count = (stream: string, from: number, to: number) => {
      const pendingFrom = Math.max(from, (acked.get(stream) ?? 0) + 1); // acked ones were delivered, not dropped
      if (to < pendingFrom) return;
      const d = dropped.get(stream) ?? { upto: 0, n: 0 };
      d.upto = Math.max(d.upto, to);
      d.n += to - pendingFrom + 1;
      dropped.set(stream, d);
    };
    while (this.overCap()) {
      const c = this.stmts.oldestChunk.get();
      if (!c) break;
      const n = c.last_seq - c.first_seq + 1;
      if (this.events - n >= this.maxEvents || this.bytes - c.bytes >= this.maxBytes) {
        // Even without all of it the outbox is still at a cap: the whole chunk goes.
        this.trimHead(c, n);
        count(c.stream, c.first_seq, c.last_seq);
        continue;
      }
      // Trim just enough records off the head of this chunk.
      const lines = splitChunk(c.payload);
      let k = 0;
      let freed = 0;
      while (k < lines.length && (this.events - k > this.maxEvents || this.bytes - freed > this.maxBytes)) {
        freed += Buffer.byteLength(lines[k]!);
        k++;
      }
      this.trimHead(c, k);
      count(c.stream, c.first_seq, c.first_seq + k - 1);
    }
    for (const [stream, d] of dropped) {
      this.stmts.markDropped.run(d.upto, d.n, stream);
      this.droppedTotal += d.n;
      // At the cap every append drops: one line a minute per stream, with what was held back.
      const t = this.dropLog.take(stream, d.n);
      if (t) this.log?.warn({ stream, dropped: t.count, dropped_upto: d.upto, policy: 'drop_oldest' }, 'outbox full: oldest pending events dropped');
    }
  }

  private atCap(): boolean {
    return this.bytes >= this.maxBytes || this.events >= this.maxEvents;
  }

  private overCap(): boolean {
    return this.bytes > this.maxBytes || this.events > this.maxEvents;
  }

  private updateFullState(): void {
    // Under cap pressure acked rows go at once, whatever the replay window. Without this an
    // outbox at its caps with only acked rows (reopened, or caps lowered) would be 'full' with
    // nothing pending, so no ack could ever come to release the collectors.
    if (this.policy === 'block' && this.atCap() && this.stmts.anyAckedRow.get()) this.deleteAcked(true, Date.now());
    const full = this.policy === 'block' && this.atCap();
    if (full === this.full) return;
    this.full = full;
    this.fullLog.change(full ? 'full' : 'space');
    this.emit(full ? 'full' : 'space');
  }

  private refreshUsage(): void {
    const usage = this.db
      .prepare(
        'SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n, coalesce(sum(bytes), 0) AS b, (SELECT coalesce(sum(dropped_count), 0) FROM streams) AS d FROM chunks',
      )
      .get() as { n: number; b: number; d: number };
    this.events = usage.n;
    this.bytes = usage.b;
    this.droppedTotal = usage.d;
  }

  private assertOpen(): void {
    if (this.closed) throw new ErpEdgeError('ERP_OUTBOX_CLOSED', `outbox ${this.path} is closed`, { path: this.path });
  }
}

/** A chunk row's problems under `lineCheck`, or undefined when every line of it can be sent. */
function checkChunk(c: ChunkRow, lineCheck: (line: string, seq: number) => string | undefined): Quarantine | undefined {
  const whole = chunkProblem(c.payload, c.first_seq, c.last_seq);
  if (whole) return { whole };
  const lines = splitChunk(c.payload);
  let bad: Map<number, string> | undefined;
  for (let i = 0; i < lines.length; i++) {
    const p = lineCheck(lines[i]!, c.first_seq + i);
    if (p) (bad ??= new Map()).set(i, p);
  }
  return bad ? { lines: bad } : undefined;
}

/** `outbox repair`'s check of a record line: readable, and a record the relay would accept (wire v2). */
export function fullLineProblem(line: string, seq: number): string | undefined {
  const p = lineProblem(line, seq);
  if (p) return p;
  const r = wireRecordV2.safeParse(JSON.parse(line));
  if (r.success) return undefined;
  const issue = r.error.issues[0]!;
  return `record fails the wire schema: ${issue.path.join('.') || '(record)'}: ${issue.message}`;
}

/** A chunk payload as text for the dead-letter table (a BLOB written over it is kept as base64). */
function payloadText(payload: unknown): string {
  if (typeof payload === 'string') return payload;
  // A Buffer from better-sqlite3, a plain Uint8Array from node:sqlite.
  if (payload instanceof Uint8Array) return `base64:${Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('base64')}`;
  return String(payload);
}

/** SQLite's "database or disk is full" (ENOSPC or a quota while writing the database or its WAL). */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || (typeof code === 'string' && code.startsWith('SQLITE_IOERR') && /no space|disk is full/i.test(String((err as Error).message)));
}

/** Consecutive runs of ascending seqs. */
function runsOf(seqs: readonly number[]): { from: number; to: number }[] {
  const runs: { from: number; to: number }[] = [];
  for (const q of seqs) {
    const last = runs[runs.length - 1];
    if (last && last.to + 1 === q) last.to = q;
    else runs.push({ from: q, to: q });
  }
  return runs;
}

/** Payload bytes of dead letters stored with an append (they take room on the disk as records do; UTF-8, as stored). */
function deadLetterBytes(dead: readonly DeadLetterInput[] | undefined): number {
  let n = 0;
  for (const d of dead ?? []) n += Buffer.byteLength(d.payload);
  return n;
}

function encodedBytes(records: readonly EncodedRecord[]): number {
  let n = 0;
  for (const r of records) n += r.bytes;
  return n;
}

function readStreamStatus(db: SqliteDb, outboxEpoch: string): StreamStatus[] {
  const streams = db.prepare('SELECT * FROM streams ORDER BY stream').all() as StreamRow[];
  const whole = db.prepare<[string, number], { n: number; b: number; oldest: number | null }>(
    'SELECT coalesce(sum(last_seq - first_seq + 1), 0) AS n, coalesce(sum(bytes), 0) AS b, min(min_ts) AS oldest FROM chunks WHERE stream = ? AND first_seq > ?',
  );
  const straddling = db.prepare<[string, number, number], ChunkRow>('SELECT * FROM chunks WHERE stream = ? AND first_seq <= ? AND last_seq > ?');
  const dead = new Map(
    hasDeadLetters(db)
      ? (db.prepare('SELECT stream, count(*) AS n FROM dead_letters GROUP BY stream').all() as { stream: string; n: number }[]).map((r) => [r.stream, r.n])
      : [],
  );
  return streams.map((s) => {
    const p = whole.get(s.stream, s.acked_seq)!;
    let { n, b, oldest } = p;
    // The chunk the ack cursor falls inside: count only its pending records (exactly).
    const partial = straddling.get(s.stream, s.acked_seq, s.acked_seq);
    if (partial) {
      const pending = splitChunk(partial.payload).slice(s.acked_seq + 1 - partial.first_seq);
      n += pending.length;
      b += pending.reduce((sum, l) => sum + Buffer.byteLength(l), 0);
      const ts = Math.min(...pending.map((l) => recordTsOr(l, partial.min_ts)));
      oldest = oldest === null ? ts : Math.min(oldest, ts);
    }
    return {
      stream: s.stream,
      epoch: s.epoch ?? outboxEpoch,
      lastSeq: s.next_seq - 1,
      ackedSeq: s.acked_seq,
      pending: n,
      pendingBytes: b,
      oldestPendingTs: oldest,
      lastAckAt: s.acked_at,
      droppedUpto: s.dropped_upto,
      dropped: s.dropped_count,
      deadLetters: dead.get(s.stream) ?? 0,
      // Absent from a release-0.1 file that no agent has migrated yet.
      deadLettered: s.dead_lettered ?? 0,
    };
  });
}

/** Dead-lettered records read from the file without opening it for writing (nor migrating it). */
export function readDeadLetters(path: string, q: DeadLetterQuery): DeadLetter[] {
  const db = openSqlite(path, { readonly: true, fileMustExist: true });
  try {
    return hasDeadLetters(db) ? new DeadLetters(db).list(q) : [];
  } finally {
    db.close();
  }
}

/** False for an outbox written by release 0.1 and not yet opened by a newer agent. */
function hasDeadLetters(db: SqliteDb): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'").get() !== undefined;
}

export interface OutboxSnapshot {
  epoch: string;
  streams: StreamStatus[];
  deadLetters: { count: number; oldestAt: number | null };
}

/**
 * Reads stream status from an outbox file without opening it for writing (works while the agent
 * runs). An outbox written by an older release is read as it is: it is migrated only when an
 * agent opens it.
 */
export function readOutboxStatus(path: string): OutboxSnapshot {
  const db = openSqlite(path, { readonly: true, fileMustExist: true });
  try {
    const epoch = (db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: string } | undefined)?.value ?? '';
    const d = hasDeadLetters(db)
      ? (db.prepare('SELECT count(*) AS n, min(at) AS oldest FROM dead_letters').get() as { n: number; oldest: number | null })
      : { n: 0, oldest: null };
    return { epoch, streams: readStreamStatus(db, epoch), deadLetters: { count: d.n, oldestAt: d.oldest } };
  } finally {
    db.close();
  }
}
