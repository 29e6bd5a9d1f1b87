import { once } from 'node:events';
import { setTimeout as delay } from 'node:timers/promises';
import { ErpEdgeError, isErpEdgeError } from '../../common/errors.js';
import { LogThrottle } from '../../common/log-throttle.js';
import type { Logger } from '../../common/logger.js';
import { topicLevel } from '../../common/wire-v1.js';
import { captureRecord, encodeRecordBody, type CaptureRecord } from '../../common/wire-v2.js';
import { captureFieldsOk } from '../../common/record-check.js';
import type { DeadLetterInput } from '../outbox/dead-letter.js';
import type { KeyVersionsInput, StoredKey } from '../outbox/key-versions.js';
import type { AppendOptions as OutboxAppendOptions, EncodedRecord, Outbox, RoomTicket } from '../outbox/outbox.js';

/** With the outbox's disk full, how long an append waits at most before it tries again (space may be freed outside the agent). */
const DISK_RETRY_MS = 1_000;

/** A record as a collector hands it to its writer: the writer stamps `source` (and `ts` when absent). */
export type CaptureInput = Omit<CaptureRecord, 'source' | 'ts'> & { ts?: number };

/** A checkpoint in the collector's own namespace; `value: null` deletes it. */
export interface CheckpointInput {
  key: string;
  value: unknown;
}

export interface AppendOptions {
  /**
   * What to do with records that fail validation. `refuse` (default): throw ERP_RECORD_INVALID /
   * ERP_RECORD_TOO_LARGE naming each one, write nothing. `dead_letter`: append the valid ones and
   * store the invalid ones in the dead-letter table with their reason, in the same transaction.
   */
  invalid?: 'refuse' | 'dead_letter';
  /** Another stream than the collector's own (validated as an MQTT topic level). */
  stream?: string;
  /** Source keys and the versions captured, stored in the same transaction (see outbox/key-versions.ts). */
  keyVersions?: KeyVersionsInput;
  /**
   * When the outbox is full under `block`: `wait` (default) until there is room; `refuse`: throw
   * ERP_OUTBOX_FULL at once and write nothing, for a collector that can tell its sender to retry
   * later (a handheld's WebSocket) instead of holding the request open.
   */
  whenFull?: 'wait' | 'refuse';
}

export interface AppendResult {
  appended: number;
  deadLettered: number;
  /** Seqs given to the appended records (0, 0 when none). */
  firstSeq: number;
  lastSeq: number;
  /** How long the append waited for outbox space (block policy); 0 when it did not. */
  waitedMs: number;
}

/** A record the capture rules refuse, with a JSON of it for the dead-letter table. */
export interface Refused {
  problem: InvalidRecord;
  payload: string;
}

export interface InvalidRecord {
  index: number;
  id: unknown;
  field: string;
  message: string;
  code: 'ERP_RECORD_INVALID' | 'ERP_RECORD_TOO_LARGE';
}

/** What a collector can do with its records and checkpoints: nothing else of the outbox. */
export interface Writer {
  readonly source: string;
  readonly stream: string;
  append(records: readonly CaptureInput[], checkpoint?: CheckpointInput | readonly CheckpointInput[], opts?: AppendOptions): Promise<AppendResult>;
  /** Stores checkpoints alone (state changes without records); never waits for space. */
  setCheckpoints(checkpoint: CheckpointInput | readonly CheckpointInput[]): void;
  getCheckpoint<T = unknown>(key: string): T | undefined;
  listCheckpoints<T = unknown>(): { key: string; value: T }[];
  /** The versions captured for these source keys in `scope` (absent: never captured). */
  keyVersions(scope: string, keys: readonly string[]): Map<string, string>;
  /** The captured keys of `scope` after `after` ('' first), in key order: for reconciliation. */
  capturedKeys(scope: string, after: string, limit: number): StoredKey[];
}

export interface WriterStats {
  records: number;
  bytes: number;
  appends: number;
  refused: number;
  dead_lettered: number;
  last_append_at: number | null;
  /** Appends that had to wait for outbox space, and how long in all. */
  waits: number;
  waited_ms: number;
  /** Appends refused at once because the outbox was full (`whenFull: 'refuse'`). */
  full_refusals: number;
}

/** A writer's counters before its first append (also what `status` shows for a stopped agent). */
export function emptyWriterStats(): WriterStats {
  return { records: 0, bytes: 0, appends: 0, refused: 0, dead_lettered: 0, last_append_at: null, waits: 0, waited_ms: 0, full_refusals: 0 };
}

export interface CaptureWriterOptions {
  outbox: Outbox;
  /** `<type>:<name>`: the records' source and the checkpoints' namespace. */
  source: string;
  stream: string;
  maxRecordBytes: number;
  logger: Logger;
}

/**
 * The seam between a collector and the outbox (one per collector, kept across restarts). It checks
 * every record against the wire schema and the size limit before it can enter the outbox (a record
 * the relay would refuse would stall its stream), stamps `source`, keeps checkpoints in the
 * collector's namespace, waits for space under the `block` cap policy so back-pressure cannot be
 * forgotten, and counts what it wrote.
 */
export class CaptureWriter {
  readonly source: string;
  readonly stream: string;
  /** `source` as JSON, encoded once: every record carries it. */
  private readonly sourceJson: string;
  private readonly outbox: Outbox;
  private readonly maxRecordBytes: number;
  private readonly log: Logger;
  private readonly invalidLog = new LogThrottle(60_000);
  private readonly streams = new Set<string>();
  private readonly counters: WriterStats = emptyWriterStats();

  constructor(opts: CaptureWriterOptions) {
    this.outbox = opts.outbox;
    this.source = opts.source;
    this.sourceJson = JSON.stringify(opts.source);
    this.stream = opts.stream;
    this.maxRecordBytes = opts.maxRecordBytes;
    this.log = opts.logger;
    this.streams.add(opts.stream);
  }

  /**
   * The collector instance's view. Its appends wait (and give up) with the instance's stop signal;
   * `retired` says when it may append nothing more (default: as soon as the signal is aborted). The
   * supervisor retires an instance only once its stop() has finished (or been abandoned): what a
   * collector still holds when asked to stop (scans read but not yet written) goes in while there
   * is room without waiting, and no successor exists yet to own the checkpoints.
   */
  forInstance(signal: AbortSignal, retired: () => boolean = () => signal.aborted): Writer {
    return {
      source: this.source,
      stream: this.stream,
      append: (records, checkpoint, opts) => this.append(records, checkpoint, opts, signal, retired),
      setCheckpoints: (cp) => this.setCheckpoints(cp),
      getCheckpoint: <T>(key: string) => this.outbox.getCheckpoint<T>(this.source, key),
      listCheckpoints: <T>() => this.outbox.listCheckpoints<T>(this.source),
      keyVersions: (scope, keys) => this.outbox.getKeyVersions(this.source, scope, keys),
      capturedKeys: (scope, after, limit) => this.outbox.listKeys(this.source, scope, after, limit),
    };
  }

  stats(): WriterStats {
    return { ...this.counters };
  }

  async append(
    records: readonly CaptureInput[],
    checkpoint: CheckpointInput | readonly CheckpointInput[] = [],
    opts: AppendOptions = {},
    signal?: AbortSignal,
    retired: () => boolean = () => signal?.aborted ?? false,
  ): Promise<AppendResult> {
    const stream = this.checkStream(opts.stream ?? this.stream);
    const now = Date.now();
    const valid: EncodedRecord[] = [];
    const invalid: { index: number; problem: InvalidRecord; payload: string }[] = [];
    let validBytes = 0;
    records.forEach((r, index) => {
      const checked = this.encode(r, index, now);
      if ('problem' in checked) invalid.push({ index, problem: checked.problem, payload: checked.payload });
      else {
        valid.push(checked);
        validBytes += checked.bytes;
      }
    });
    if (invalid.length > 0) this.reportInvalid(stream, invalid.map((i) => i.problem), opts.invalid ?? 'refuse');
    if (invalid.length > 0 && (opts.invalid ?? 'refuse') === 'refuse') {
      this.counters.refused += invalid.length;
      const first = invalid[0]!.problem;
      throw new ErpEdgeError(first.code, describe(first, invalid.length), { source: this.source, stream, invalid: invalid.map((i) => i.problem) });
    }
    const deadLetters: DeadLetterInput[] = invalid.map((i) => ({ stream, origin: 'capture', reason: `${i.problem.field}: ${i.problem.message}`, payload: i.payload }));
    const cps = toCheckpoints(this.source, checkpoint);
    const keyVersions = opts.keyVersions ? { collector: this.source, ...opts.keyVersions } : undefined;
    const alongside = { deadLetters, keyVersions };
    if (valid.length > 0 && opts.whenFull === 'refuse' && !this.outbox.hasRoomFor(stream, valid.length, validBytes)) {
      throw this.refuseFull(stream, valid.length, 'outbox is full');
    }
    const r =
      valid.length > 0
        ? await this.appendWhenSpace(stream, valid, validBytes, cps, alongside, signal, retired, opts.whenFull ?? 'wait')
        : await this.appendWithoutRecords(stream, cps, alongside, signal, opts.whenFull ?? 'wait');
    this.counters.appends++;
    this.counters.records += valid.length;
    this.counters.bytes += validBytes;
    this.counters.dead_lettered += deadLetters.length;
    if (valid.length > 0) this.counters.last_append_at = Date.now();
    return { appended: valid.length, deadLettered: deadLetters.length, firstSeq: valid.length ? r.firstSeq : 0, lastSeq: valid.length ? r.lastSeq : 0, waitedMs: r.waitedMs };
  }

  setCheckpoints(checkpoint: CheckpointInput | readonly CheckpointInput[]): void {
    this.outbox.setCheckpoint(toCheckpoints(this.source, checkpoint));
  }

  /**
   * Under `block` the outbox refuses an append that would go past a cap: wait for room, then append
   * in the same tick. Another writer can take the room first (ERP_OUTBOX_FULL): wait again.
   */
  private async appendWhenSpace(
    stream: string,
    records: EncodedRecord[],
    bytes: number,
    cps: ReturnType<typeof toCheckpoints>,
    alongside: Pick<OutboxAppendOptions, 'deadLetters' | 'keyVersions'>,
    signal: AbortSignal | undefined,
    retired: () => boolean,
    whenFull: 'wait' | 'refuse' = 'wait',
  ): Promise<{ firstSeq: number; lastSeq: number; waitedMs: number }> {
    let waitedSince: number | undefined;
    for (;;) {
      let ticket: RoomTicket | undefined;
      try {
        if (!this.outbox.hasRoomFor(stream, records.length, bytes)) {
          waitedSince ??= Date.now();
          ticket = await this.outbox.waitForRoom(stream, records.length, bytes, signal);
        }
        // A retired instance (stopped or abandoned) appends nothing more: its successor owns the checkpoints.
        if (retired()) throw signal?.reason ?? new DOMException('This operation was aborted', 'AbortError');
        const r = this.outbox.appendEncoded(stream, records, cps, { ...alongside, ticket });
        return { ...r, waitedMs: this.countWait(waitedSince) };
      } catch (err) {
        if (isErpEdgeError(err, 'ERP_OUTBOX_DISK_FULL')) {
          // The disk, not the caps: the same as no room. Nothing was written; wait for acked rows to
          // be pruned (the outbox prunes them at once now) or, since space can also be freed outside
          // the agent, look again after a while. Never thrown to the collector: no crash loop.
          if (whenFull === 'refuse') throw this.refuseFull(stream, records.length, "the outbox's disk is full");
          waitedSince ??= Date.now();
          if (ticket) this.outbox.releaseRoom(ticket);
          ticket = undefined;
          await this.waitForDisk(signal);
          continue;
        }
        if (!isErpEdgeError(err, 'ERP_OUTBOX_FULL')) throw err;
        waitedSince ??= Date.now();
      } finally {
        if (ticket) this.outbox.releaseRoom(ticket);
      }
    }
  }

  /**
   * Checkpoints and dead letters alone: no cap to wait for (they add no records), but dead letters
   * take room on the disk, so at the disk's floor this waits as a record append does, never
   * throwing ERP_OUTBOX_DISK_FULL to the collector.
   */
  private async appendWithoutRecords(
    stream: string,
    cps: ReturnType<typeof toCheckpoints>,
    alongside: Pick<OutboxAppendOptions, 'deadLetters' | 'keyVersions'>,
    signal: AbortSignal | undefined,
    whenFull: 'wait' | 'refuse',
  ): Promise<{ firstSeq: number; lastSeq: number; waitedMs: number }> {
    let waitedSince: number | undefined;
    for (;;) {
      try {
        const r = this.outbox.appendEncoded(stream, [], cps, alongside);
        return { ...r, waitedMs: this.countWait(waitedSince) };
      } catch (err) {
        if (!isErpEdgeError(err, 'ERP_OUTBOX_DISK_FULL')) throw err;
        if (whenFull === 'refuse') throw this.refuseFull(stream, alongside.deadLetters?.length ?? 0, "the outbox's disk is full");
        waitedSince ??= Date.now();
        await this.waitForDisk(signal);
      }
    }
  }

  /** An append that had to wait (since `waitedSince`) is counted once it went in; the wait in ms, 0 when none. */
  private countWait(waitedSince: number | undefined): number {
    if (waitedSince === undefined) return 0;
    const waitedMs = Date.now() - waitedSince;
    this.counters.waits++;
    this.counters.waited_ms += waitedMs;
    return waitedMs;
  }

  /** After a disk-full refusal: until rows are freed in the outbox, or DISK_RETRY_MS at most. */
  private async waitForDisk(signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    const done = new AbortController();
    const either = signal ? AbortSignal.any([signal, done.signal]) : done.signal;
    try {
      await Promise.race([once(this.outbox, 'freed', { signal: either }), delay(DISK_RETRY_MS, undefined, { signal: either })]);
    } catch (err) {
      if (signal?.aborted) throw signal.reason ?? err;
    } finally {
      done.abort(); // ends the loser of the race
    }
  }

  /** `whenFull: 'refuse'`: ERP_OUTBOX_FULL at once, counted. */
  private refuseFull(stream: string, records: number, what: string): ErpEdgeError {
    this.counters.full_refusals++;
    return new ErpEdgeError('ERP_OUTBOX_FULL', `${what}: ${records} record(s) refused, retry later`, { source: this.source, stream, records });
  }

  private encode(r: CaptureInput, index: number, now: number): EncodedRecord | Refused {
    const ts = r.ts === undefined ? now : r.ts;
    // The common case, a valid record, without building another object for zod.
    if (r.data !== undefined && captureFieldsOk(r.id, this.source, ts, r.source_ts, r.key, r.txn, r.correlation_id)) {
      const quick = encodeBody(r as CaptureRecord, index, this.maxRecordBytes, this.sourceJson, ts);
      if (quick) return quick;
    }
    return encodeCapture({ ...r, source: this.source, ts }, index, this.maxRecordBytes);
  }

  private reportInvalid(stream: string, problems: InvalidRecord[], policy: 'refuse' | 'dead_letter'): void {
    const first = problems[0]!;
    const t = this.invalidLog.take(`${first.code}:${first.field}`, problems.length);
    if (!t) return;
    const action = policy === 'refuse' ? 'refused' : 'moved to the dead-letter table';
    this.log.warn(
      { source: this.source, stream, invalid: t.count, first: { index: first.index, id: String(first.id), field: first.field, message: first.message, code: first.code } },
      `invalid records ${action} at capture`,
    );
  }

  private checkStream(stream: string): string {
    if (this.streams.has(stream)) return stream;
    const ok = topicLevel.safeParse(stream);
    if (!ok.success) throw new ErpEdgeError('ERP_RECORD_INVALID', `stream "${stream}": ${ok.error.issues[0]?.message ?? 'invalid'}`, { source: this.source, stream });
    this.streams.add(stream);
    return stream;
  }
}

/**
 * Validates one record against the wire schema and the size limit and serialises it once; or says
 * what is wrong with it (with a best-effort JSON of it, for the dead-letter table).
 */
export function encodeCapture(
  record: Record<string, unknown> & { ts: unknown },
  index: number,
  maxRecordBytes: number,
): EncodedRecord | Refused {
  const parsed = captureRecord.safeParse(record);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || '(record)';
    return { problem: { index, id: record.id, field, message: issue.message, code: 'ERP_RECORD_INVALID' }, payload: bestEffortJson(record) };
  }
  return encodeBody(parsed.data, index, maxRecordBytes) ?? { problem: unserialisable(record, index, 'data cannot be serialised'), payload: bestEffortJson(record) };
}

/**
 * Serialises a record that passed the field checks and applies the size limit; undefined when
 * its data cannot be serialised (the caller reports that through encodeCapture).
 */
function encodeBody(
  record: CaptureRecord,
  index: number,
  maxRecordBytes: number,
  sourceJson = JSON.stringify(record.source),
  ts = record.ts,
): EncodedRecord | Refused | undefined {
  let body: string;
  try {
    body = encodeRecordBody(record, sourceJson, ts);
  } catch {
    // BigInt, a cycle, a function: data that JSON cannot carry (named by encodeCapture).
    return undefined;
  }
  const bytes = Buffer.byteLength(body);
  // Measured as the relay will: with the seq the outbox puts in front (at most 24 bytes).
  if (bytes + SEQ_PREFIX_MAX > maxRecordBytes) {
    const message = `record is ${bytes} bytes, over outbox.max_record_bytes (${maxRecordBytes})`;
    return { problem: { index, id: record.id, field: '(record)', message, code: 'ERP_RECORD_TOO_LARGE' }, payload: `{${body}` };
  }
  return { ts, body, bytes };
}

/** `{"seq":` + up to 16 digits + `,`: what the outbox adds to a record's body. */
const SEQ_PREFIX_MAX = 24;

function unserialisable(record: Record<string, unknown>, index: number, fallback: string): InvalidRecord {
  let message = fallback;
  try {
    if (JSON.stringify(record.data) === undefined) message = `a ${typeof record.data} has no JSON form`;
  } catch (err) {
    message = (err as Error).message;
  }
  return { index, id: record.id, field: 'data', message: `not serialisable as JSON: ${message}`, code: 'ERP_RECORD_INVALID' };
}

function toCheckpoints(namespace: string, cp: CheckpointInput | readonly CheckpointInput[]) {
  const list = Array.isArray(cp) ? (cp as readonly CheckpointInput[]) : [cp as CheckpointInput];
  return list.map((c) => ({ collector: namespace, key: c.key, value: c.value }));
}

function describe(first: InvalidRecord, count: number): string {
  const more = count > 1 ? ` (and ${count - 1} more)` : '';
  return `record ${first.index} (id ${JSON.stringify(first.id)}) ${first.field}: ${first.message}${more}`;
}

/**
 * The record as JSON for the dead-letter table. When JSON cannot carry it as it is (BigInt, a cycle,
 * NaN), what is stored is marked a preview: it shows the record, and can never be resent as data it
 * was not.
 */
function bestEffortJson(record: object): string {
  let lossy = false;
  const ancestors: object[] = [];
  try {
    const text = JSON.stringify(record, function (this: unknown, _k, v: unknown) {
      if (typeof v === 'bigint') {
        lossy = true;
        return `${v.toString()}n`;
      }
      if (typeof v === 'number' && !Number.isFinite(v)) {
        lossy = true;
        return String(v);
      }
      if (v && typeof v === 'object') {
        // `this` is the object holding v: drop ancestors that are not on v's path.
        while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
        if (ancestors.includes(v)) {
          lossy = true;
          return '[cycle]';
        }
        ancestors.push(v);
      }
      return v;
    });
    return lossy ? JSON.stringify({ preview_only: true, record: JSON.parse(text) as unknown }) : text;
  } catch (err) {
    return JSON.stringify({ preview_only: true, unserialisable: (err as Error).message });
  }
}
