import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { existsSync, watch, type BigIntStats, type Stats } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { basename, join } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import { isErpEdgeError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import { EXCEPTION_KINDS } from '../../../common/wire-v2.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import type { CaptureInput, CheckpointInput, Writer } from '../../host/writer.js';
import { localDate, moveFile, sha256File } from './files.js';
import { readRows, scanFile, type FileScan, type FormatOptions } from './formats.js';
import { rowIdentity } from './identity.js';
import { claimKey, isClaimKey, isContentKey, isSeenKey, seenKey, type ClaimEntry, type ContentEntry, type SeenEntry } from './ledger.js';
import { nameMatcher, TEMP_NAMES } from './names.js';
import { heldForWriting } from './open-writers.js';
import { byName, DropQueue, type QueueItem } from './queue.js';
import { dialectOf, type FileDropConfig } from './schema.js';

export { rowIdentity } from './identity.js';

/** Files whose stability is checked per tick (the head of the queue and those right behind it). */
const OBSERVED_PER_TICK = 100;
/** A file that could not be handled (locked, unreadable, a ledger write failed) is tried again after this. */
const RETRY_MS = 5_000;

/**
 * How often the ledger forgets hashes older than dedupe_window, and error/ is counted again: hourly,
 * or four times per window when the window is shorter, so a hash is forgotten at most a quarter of
 * the window late.
 */
function housekeepingMs(dedupeWindowMs: number): number {
  return Math.min(3_600_000, Math.max(250, Math.floor(dedupeWindowMs / 4)));
}

/** done: the file left the queue; wait: not final yet (a full stable_time again); or wait at least this long. */
type Outcome = 'done' | 'wait' | { waitMs: number };

export function create(cfg: FileDropConfig, ctx: CollectorContext): Collector {
  return new FileDropCollector(cfg, ctx);
}

/**
 * Watches a folder for ERP file drops and ingests each file once, whole, in drop order.
 *
 * A file is taken when its size and mtime have held still for stable_time (empty files:
 * empty_stable_time) and, on Linux, no process holds it open for writing; it is then claimed by a
 * move into `.processing/` (on Windows the move fails while a writer has it open: the first guard
 * there), read, and archived only if it is still unchanged. A file that changed after it was read
 * (a writer that paused longer than stable_time) is read on from its committed row count once it
 * is stable again; a last line without its terminator is held back until the file is final.
 * Progress lives in the outbox with the records (see ledger.ts), so a restart at any point resumes
 * where it stopped and the same content is never ingested twice.
 */
export class FileDropCollector implements Collector {
  readonly name: string;
  private readonly id: string;
  private readonly stream: string;
  private readonly dir: string;
  private readonly archiveDir: string;
  private readonly errorDir: string;
  /**
   * A file is claimed by moving it here before it is read: whatever lands under the same name in
   * the drop folder afterwards (the next export) is a new file, untouched by this one's handling.
   */
  private readonly processingDir: string;
  private readonly writer: Writer;
  private readonly log: Logger;
  private readonly fail: (err: unknown) => void;
  private readonly isIncluded: (name: string) => boolean;
  private readonly isTemp: (name: string) => boolean;
  private readonly formatOptions: FormatOptions;
  private readonly queue: DropQueue;
  private readonly tickMs: number;
  /** /proc can show a writer still holding a file: Linux, writer_check on, a local (not polled) folder. */
  private readonly procGuard: boolean;
  private readonly uid = process.getuid?.() ?? -1;
  private claimSeq = 0;
  /** Watcher reports after start-up, counted (see QueueItem.seen). */
  private seenSeq = 0;
  /** Names the raw folder watch saw, with their event number, until the watcher reports them. */
  private readonly sightings = new Map<string, number>();
  private rawWatch: import('node:fs').FSWatcher | undefined;
  private watching = false;
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private pumping: Promise<void> | undefined;
  private busy = false;
  private idleWaiters: (() => void)[] = [];
  private readonly abort = new AbortController();
  private readonly counters = { files_ingested: 0, files_error: 0, files_duplicate: 0, records: 0, rows_dead_lettered: 0, io_errors: 0, out_of_order: 0 };
  private lastError = '';
  private readonly retryLog = new LogThrottle(60_000);
  /** Names (unmatched files, subfolders, files held open, files waiting their turn) already logged once. */
  private readonly noted = new Set<string>();
  private housekeepingTimer: NodeJS.Timeout | undefined;
  /** Files now in error/ (not their .reason.txt) and the oldest one's time: the open file_error exceptions. */
  private errorFiles = { count: 0, oldestAt: null as number | null };

  constructor(
    private readonly cfg: FileDropConfig,
    ctx: CollectorContext,
  ) {
    this.name = cfg.name;
    this.id = ctx.writer.source;
    this.stream = cfg.stream ?? cfg.name;
    this.dir = ctx.resolvePath(cfg.path);
    this.archiveDir = cfg.archive_dir ? ctx.resolvePath(cfg.archive_dir) : join(this.dir, 'archive');
    this.errorDir = cfg.error_dir ? ctx.resolvePath(cfg.error_dir) : join(this.dir, 'error');
    // One per collector: two collectors may watch one folder with different include patterns.
    this.processingDir = join(this.dir, '.processing', cfg.name);
    this.writer = ctx.writer;
    this.log = ctx.logger;
    this.fail = (err) => ctx.fail(err);
    // The host's stop signal ends waits for outbox space and the pump.
    ctx.signal.addEventListener('abort', () => this.abort.abort(), { once: true });
    this.isIncluded = nameMatcher(cfg);
    this.isTemp = picomatch([...TEMP_NAMES], { dot: true, nocase: true });
    this.formatOptions = { format: cfg.format, encoding: cfg.encoding, dialect: dialectOf(cfg), keyColumns: cfg.key };
    this.queue = new DropQueue({ order: cfg.order, stableMs: cfg.stable_time, emptyStableMs: cfg.empty_stable_time, orderTimeoutMs: cfg.order_timeout });
    this.tickMs = Math.max(10, Math.min(500, Math.floor(cfg.stable_time / 4)));
    this.procGuard = cfg.writer_check && !cfg.poll && existsSync('/proc/self/fd');
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.forgetOldHashes();
    await this.countErrorFiles();
    // A long-running agent must honour dedupe_window too, and notice files IT removed from error/.
    this.housekeepingTimer = setInterval(() => {
      this.forgetOldHashes();
      void this.countErrorFiles();
    }, housekeepingMs(this.cfg.dedupe_window));
    this.housekeepingTimer.unref();
    // Claimed before a stop or crash: finished first, in claim order.
    await this.recoverClaims();
    const sightings = this.recoverSightings();
    const internal = new Set([join(this.dir, '.processing'), this.archiveDir, this.errorDir]);
    this.watcher = chokidar.watch(this.dir, {
      depth: 0,
      ignoreInitial: false, // files already present at start are picked up
      usePolling: this.cfg.poll,
      interval: this.cfg.poll_interval,
      binaryInterval: this.cfg.poll_interval,
      // No awaitWriteFinish: its timer per file let files overtake each other. Stability is the queue's job.
      ignored: (p) => internal.has(p),
    });
    // Not for polled shares: they send no events (and their order is the poll's).
    if (!this.cfg.poll) {
      this.rawWatch = watch(this.dir, { persistent: false }, (_event, name) => this.noteEvent(name));
      this.rawWatch.on('error', () => undefined); // the folder going away is chokidar's to report
    }
    const initial: Promise<void>[] = [];
    const onFile = (p: string) => {
      const seeing = this.see(p);
      if (!this.watching) initial.push(seeing);
    };
    this.watcher.on('add', onFile);
    this.watcher.on('change', onFile);
    this.watcher.on('addDir', (p) => p !== this.dir && this.noteOnce(`dir:${p}`, () => this.log.info({ dir: p }, 'subfolder not watched: only files at the top of the drop folder are taken')));
    // The folder went away (share offline), or the OS ran out of watches: a new watcher, after the
    // host's back-off, is the way back. Files claimed meanwhile stay in .processing/ and are finished first.
    this.watcher.on('error', (err) => {
      this.lastError = (err as Error).message;
      this.fail(err);
    });
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    this.watching = true;
    await Promise.all(initial); // each found file has taken its sighting from before the restart
    this.forgetSightings(sightings);
    // chokidar lists the folder first and only then starts watching it; a file created in between is not
    // reported until the folder changes again (with poll: true, until after polling's first stat), which on
    // a quiet share can be hours. One more listing, once watching is surely on, closes that gap.
    this.rescanTimer = setTimeout(() => void this.rescan(), this.cfg.poll ? this.cfg.poll_interval : this.cfg.stable_time);
    this.rescanTimer.unref();
    this.pumping = this.pump();
    this.log.info({ dir: this.dir, poll: this.cfg.poll, format: this.cfg.format, stream: this.stream, order: this.cfg.order }, 'watching for file drops');
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.rescanTimer);
    clearInterval(this.housekeepingTimer);
    this.rawWatch?.close();
    await this.watcher?.close();
    await this.pumping;
    this.wakeIdle();
  }

  stats(): CollectorStats {
    return {
      counters: { ...this.counters, queued: this.queue.size, last_error: this.lastError },
      exceptions: [{ kind: EXCEPTION_KINDS.fileError, count: this.errorFiles.count, oldest_at: this.errorFiles.oldestAt }],
    };
  }

  /** Resolves once no file is waiting or being handled (used by tests and shutdown). */
  idle(): Promise<void> {
    if ((this.queue.size === 0 && !this.busy) || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** A file the watcher (or a rescan) reported: queued if its name is taken, its arrival fixed now. */
  private async see(path: string): Promise<void> {
    if (this.abort.signal.aborted || this.queue.has(path)) return;
    const name = basename(path);
    if (!this.isIncluded(name)) return this.noteUnmatched(name);
    // Counted before the stat: the stats of files reported together may complete in any order.
    let seen = this.watching ? this.takeSighting(name) : 0;
    const st = await stat(path, { bigint: true }).catch(() => undefined);
    if (!st?.isFile() || this.queue.has(path) || this.abort.signal.aborted) return;
    // Found at start-up: the order it was reported in before the restart, if it is the same file.
    const before = seen === 0 ? this.writer.getCheckpoint<SeenEntry>(seenKey(name)) : undefined;
    if (before && before.ino === Number(st.ino)) seen = before.seen;
    else if (seen > 0) this.remember(name, { seen, ino: Number(st.ino) });
    this.queue.add(path, name, st, Date.now(), { seen });
  }

  /**
   * The kernel's event order, recorded as each event arrives: chokidar re-lists the folder on a
   * change and reports new files in listing order, which loses the order of back-to-back renames.
   */
  private noteEvent(name: string | null): void {
    if (name === null || this.sightings.has(name) || !this.isIncluded(name)) return;
    if (this.sightings.size >= 10_000) this.sightings.clear(); // files that came and went unreported
    this.sightings.set(name, ++this.seenSeq);
  }

  private takeSighting(name: string): number {
    const seen = this.sightings.get(name) ?? ++this.seenSeq;
    this.sightings.delete(name);
    return seen;
  }

  /** Best effort: a sighting only orders files that share a timestamp; a failed write must not lose the file. */
  private remember(name: string, entry: SeenEntry): void {
    try {
      this.writer.setCheckpoints({ key: seenKey(name), value: entry });
    } catch (err) {
      const t = this.retryLog.take(`sighting:${(err as Error).message}`);
      if (t) this.log.warn({ file: name, err: { message: (err as Error).message } }, 'could not record the arrival order of a file; it is ordered by its timestamps');
    }
  }

  /** The last sighting number before a restart (new ones count on from it); the sightings kept. */
  private recoverSightings(): string[] {
    const keys = this.writer.listCheckpoints<SeenEntry>().filter((e) => isSeenKey(e.key));
    this.seenSeq = keys.reduce((m, e) => Math.max(m, e.value.seen), 0);
    return keys.map((e) => e.key);
  }

  /** Sightings of files no longer waiting (taken or removed while the agent was down). */
  private forgetSightings(keys: string[]): void {
    const waiting = new Set(this.queue.ordered().map((i) => seenKey(i.name)));
    const stale = keys.filter((k) => !waiting.has(k));
    if (stale.length > 0) this.writer.setCheckpoints(stale.map((key) => ({ key, value: null })));
  }

  private noteUnmatched(name: string): void {
    if (this.isTemp(name)) return; // a transfer in progress: its final name will match
    this.noteOnce(`name:${name}`, () =>
      this.log.info(
        { file: name, include: this.cfg.include, exclude: this.cfg.exclude, case_sensitive: this.cfg.case_sensitive },
        'file not taken: its name does not match the include patterns (or matches an exclude)',
      ),
    );
  }

  /** One log line per thing; the memory of what was logged is bounded (a folder with endless odd files). */
  private noteOnce(what: string, log: () => void): void {
    if (this.noted.has(what)) return;
    if (this.noted.size >= 10_000) this.noted.clear();
    this.noted.add(what);
    log();
  }

  /** Finds files the watcher has not reported (see start). */
  private async rescan(): Promise<void> {
    if (this.abort.signal.aborted) return;
    const entries = await readdir(this.dir, { withFileTypes: true }).catch((err: Error) => {
      this.log.warn({ dir: this.dir, err: { message: err.message } }, 'cannot list the drop folder');
      return [];
    });
    for (const e of entries) if (e.isFile()) await this.see(join(this.dir, e.name));
  }

  /**
   * The one loop: stat the files at the head of the queue, handle the first that is ready (in
   * order), sleep a tick when none is. One timer for all files, so waiting files cost no listeners.
   */
  private async pump(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      await this.observe();
      const pick = this.queue.next(Date.now());
      if (pick) {
        if (pick.overtakes) this.noteOvertake(pick.item, pick.overtakes);
        await this.handle(pick.item);
        continue;
      }
      this.noteBlocked();
      if (this.queue.size === 0) this.wakeIdle();
      await sleep(this.tickMs, undefined, { signal }).catch(() => undefined);
    }
  }

  private async observe(): Promise<void> {
    const now = Date.now();
    for (const item of this.queue.ordered().slice(0, OBSERVED_PER_TICK)) {
      const st = await stat(item.path, { bigint: true }).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? null : undefined));
      if (st === null) this.gone(item);
      else if (st) this.queue.observe(item, st, now);
    }
  }

  /** Removed or renamed away before it was taken; if it was claimed, its claim is settled. */
  private gone(item: QueueItem): void {
    this.queue.delete(item.path);
    if (item.claimSeq === undefined) return this.writer.setCheckpoints({ key: seenKey(item.name), value: null });
    const key = claimKey(item.path);
    const claim = this.writer.getCheckpoint<ClaimEntry>(key);
    if (claim) this.writer.setCheckpoints(this.settle(key, claim));
  }

  /**
   * The ledger writes for a claim whose file is no longer in `.processing/`: committed means it was
   * archived (the move done, the bookkeeping not); otherwise someone removed it mid-ingestion.
   */
  private settle(key: string, c: ClaimEntry): CheckpointInput[] {
    if (c.state !== 'committed') {
      this.log.warn({ file: c.path, rows: c.rows }, 'a claimed file is gone from .processing/: its ingestion stopped at the rows shown');
      return [{ key, value: null }];
    }
    const entry: ContentEntry = { state: 'archived', path: c.path, size: c.size, mtimeMs: c.mtimeMs, rows: c.rows, at: Date.now() };
    return [
      { key: c.sha256, value: entry },
      { key, value: null },
    ];
  }

  private noteBlocked(): void {
    const b = this.queue.blocked();
    if (!b) return;
    this.noteOnce(`blocked:${b.waiting.path}`, () =>
      this.log.info({ file: b.waiting.name, waits_for: b.head.name, order: this.cfg.order, order_timeout_ms: this.cfg.order_timeout }, 'file ready, waiting for an earlier file still being written'),
    );
  }

  private noteOvertake(item: QueueItem, head: QueueItem): void {
    this.counters.out_of_order++;
    this.log.warn({ file: item.name, earlier: head.name, order_timeout_ms: this.cfg.order_timeout }, 'file taken ahead of an earlier one still being written (order_timeout passed)');
  }

  private async handle(item: QueueItem): Promise<void> {
    this.busy = true;
    try {
      const outcome = await this.process(item);
      if (outcome === 'done') this.queue.delete(item.path);
      else if (outcome === 'wait') this.queue.unsettle(item, Date.now());
      else this.queue.defer(item, Date.now(), outcome.waitMs);
    } catch (err) {
      if (this.abort.signal.aborted) return;
      this.counters.io_errors++;
      this.lastError = `${item.name}: ${(err as Error).message}`;
      // A file locked for hours must not log every 5 s: one line a minute per file and error.
      const t = this.retryLog.take(`${item.path}:${(err as Error).message}`);
      if (t) {
        const e = { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
        this.log.error({ file: item.path, err: e, retries_since_last_line: t.suppressed }, `file not processed; retrying every ${RETRY_MS / 1000}s`);
      }
      // Locked or unreadable (e.g. a writer still holds it on Windows): try again later, in its place.
      this.queue.defer(item, Date.now(), RETRY_MS);
    } finally {
      this.busy = false;
    }
  }

  /** One step for a ready file: claim it if it is not yet, then read it. */
  private async process(item: QueueItem): Promise<Outcome> {
    if (await this.heldOpen(item)) return 'wait';
    if (item.claimSeq === undefined) {
      const st = await stat(item.path, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!st?.isFile()) {
        this.gone(item);
        return 'done';
      }
      if (Number(st.size) !== item.size || st.mtimeNs !== item.mtimeNs) {
        this.queue.observe(item, st, Date.now());
        return 'wait';
      }
      const work = await moveFile(item.path, this.processingDir);
      // The name was free: a claim entry under it belongs to a file gone before it was settled.
      const stale = this.writer.getCheckpoint<ClaimEntry>(claimKey(work));
      this.writer.setCheckpoints([{ key: seenKey(item.name), value: null }, ...(stale ? this.settle(claimKey(work), stale) : [])]);
      this.queue.move(item, work, ++this.claimSeq);
    }
    return this.readClaimed(item);
  }

  /** Whether a process holds the file open for writing (Linux; see open-writers.ts). Logged once per file. */
  private async heldOpen(item: QueueItem): Promise<boolean> {
    if (!this.cfg.writer_check || (await heldForWriting(item.path)) !== true) return false;
    this.noteOnce(`held:${item.path}`, () => this.log.info({ file: item.name }, 'file still open for writing by another process: waiting until it is closed'));
    return true;
  }

  /** Reads a claimed file: from its committed row count, up to what is there now. */
  private async readClaimed(item: QueueItem): Promise<Outcome> {
    const work = item.path;
    const st = await stat(work).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st) {
      this.gone(item);
      return 'done';
    }
    const claim = this.claimOf(work, st);
    const dropped = claim?.path ?? join(this.dir, item.name);
    // Crashed after the last commit, before the move.
    if (claim?.state === 'committed') return this.archive(work, dropped, claim.sha256, claim.rows, st);
    let scan: FileScan;
    try {
      scan = await scanFile(work, this.formatOptions, st.size);
    } catch (err) {
      if (!isErpEdgeError(err, 'ERP_FILE_MALFORMED')) throw err;
      // A half-written last line fails the parse too: not malformed until the file is known final.
      const unguarded = err.context.unterminated === true && this.unguardedWaitMs(st);
      if (unguarded) return { waitMs: unguarded };
      return this.moveToError(work, dropped, await sha256File(work), err.message);
    }
    const started = claim ?? (await this.firstRead(item, work, dropped, st, scan));
    if (started === 'done') return 'done';
    if (scan.rows < started.rows || st.size < started.size) {
      const reason = `the file got shorter after ${started.rows} rows were ingested (${started.size} bytes then, ${st.size} now); those rows were sent`;
      return this.moveToError(work, dropped, scan.sha256, reason);
    }
    if (claim && (st.size !== claim.size || st.mtimeMs !== claim.mtimeMs)) {
      this.log.warn({ file: dropped, from_row: claim.rows }, 'file changed after it was read: reading on from its committed rows');
    }
    return this.ingest(work, started, scan, st);
  }

  /** The claim entry for this file, if one was written for this very file (same inode). */
  private claimOf(work: string, st: Stats): ClaimEntry | undefined {
    const c = this.writer.getCheckpoint<ClaimEntry>(claimKey(work));
    return c && sameFile(c, st) && c.processing === work ? c : undefined;
  }

  /**
   * First read of a claimed file: refuse content already ingested; take over an in-flight entry of
   * release 0.1/0.2 (same content, keyed by its hash); write the claim.
   */
  private async firstRead(item: QueueItem, work: string, dropped: string, st: Stats, scan: FileScan): Promise<ClaimEntry | 'done'> {
    const prior = this.writer.getCheckpoint<ContentEntry>(scan.sha256);
    if (prior?.state === 'committed' && prior.processing === work) {
      await this.archive(work, prior.path, scan.sha256, prior.rows, st);
      return 'done';
    }
    // A file with no records cannot be ingested twice: a repeated empty export is just archived.
    if (prior && prior.rows > 0 && (prior.state === 'archived' || prior.state === 'committed')) {
      await this.rejectDuplicate(work, dropped, scan.sha256, prior);
      return 'done';
    }
    const resume = prior?.state === 'claimed' ? prior.rows : 0;
    const claim: ClaimEntry = {
      state: 'claimed',
      path: prior?.state === 'claimed' && prior.processing === work ? prior.path : dropped,
      processing: work,
      ino: st.ino,
      // Only a birth time that is clearly not the ctime: some platforms report ctime there, which moves as the file grows.
      birth: st.birthtimeMs > 0 && st.birthtimeMs < st.ctimeMs ? st.birthtimeMs : undefined,
      seq: item.claimSeq ?? ++this.claimSeq,
      rows: resume,
      prefix: scan.sha256.slice(0, 16),
      sha256: scan.sha256,
      size: st.size,
      mtimeMs: st.mtimeMs,
      at: Date.now(),
    };
    if (resume > 0) this.log.info({ file: claim.path, resumeFrom: resume }, 'resuming a partly ingested file');
    // Same content claimed before a crash (this copy or another): its entry becomes this claim.
    const legacy: CheckpointInput[] = prior?.state === 'claimed' ? [{ key: scan.sha256, value: null }] : [];
    this.writer.setCheckpoints([{ key: claimKey(work), value: claim }, ...legacy]);
    return claim;
  }

  /**
   * Streams the rows after the committed ones into the outbox, batch by batch, each with the
   * claim's progress as checkpoint. An unterminated last row is held back until the file is known
   * to be final; the file is archived only if it is unchanged since `st`. The writer waits for
   * outbox space itself; a row it cannot take (over max_record_bytes) goes to the dead-letter table
   * with its reason, and the file goes on.
   */
  private async ingest(work: string, claim: ClaimEntry, scan: FileScan, st: Stats): Promise<Outcome> {
    const file = basename(claim.path);
    const identity = rowIdentity(this.id, claim.prefix, this.cfg.key, st.mtimeMs);
    const progress = (rows: number, state: ClaimEntry['state']): CheckpointInput => ({
      key: claimKey(work),
      value: { ...claim, state, rows, sha256: scan.sha256, size: st.size, mtimeMs: st.mtimeMs, at: Date.now() } satisfies ClaimEntry,
    });
    let rows = claim.rows;
    let batch: CaptureInput[] = [];
    const commit = async (state: ClaimEntry['state']) => {
      const r = await this.writer.append(batch, progress(rows + batch.length, state), { invalid: 'dead_letter' });
      rows += batch.length;
      this.counters.records += r.appended;
      this.counters.rows_dead_lettered += r.deadLettered;
      batch = [];
    };
    const last = scan.endsWithNewline ? Infinity : scan.rows; // the row that may still be half-written
    let n = rows;
    let held: CaptureInput | undefined;
    for await (const row of readRows(work, this.readOptions(scan), { startAfterRow: rows, size: st.size })) {
      const rec = identity(row, ++n, { file, line: row.line, fields: row.fields });
      if (n === last) {
        held = rec;
        break;
      }
      batch.push(rec);
      if (batch.length >= this.cfg.batch_size) await commit('claimed');
      if (this.abort.signal.aborted) return 'wait'; // the claim keeps our place
    }
    if (!(await this.unchangedSince(work, st))) {
      if (batch.length > 0) await commit('claimed');
      return 'wait'; // read on from `rows` once it is stable again
    }
    // A header and no rows yet, or a last line without its end: the writer may be mid-export.
    const unguarded = (held !== undefined || scan.rows === 0) && this.unguardedWaitMs(st);
    if (unguarded) {
      if (batch.length > 0) await commit('claimed');
      return { waitMs: unguarded };
    }
    if (held) batch.push(held);
    await commit('committed');
    this.counters.files_ingested++;
    this.log.info({ file: claim.path, records: rows, sha256: scan.sha256 }, 'file ingested');
    return this.archive(work, claim.path, scan.sha256, rows, st);
  }

  /**
   * Where nothing can tell whether a writer still has the file, a file that looks cut short (no
   * rows after its header, or a last line without its end) is trusted only once it has not changed
   * for empty_stable_time: the time left, or 0. Only /proc tells (Linux, writer_check, a local
   * folder, a file of our own user or any as root); writers on a share are on another machine, and
   * Windows's failing rename stops only writers that do not share delete access.
   */
  private unguardedWaitMs(st: Stats): number {
    if (this.procGuard && (this.uid === 0 || st.uid === this.uid)) return 0;
    return Math.max(0, Math.ceil(st.mtimeMs + this.cfg.empty_stable_time - Date.now()));
  }

  private readOptions(scan: FileScan) {
    return { ...this.formatOptions, encoding: scan.encoding };
  }

  /** The file is final: the same size and mtime as when it was scanned, and no writer holds it open. */
  private async unchangedSince(work: string, st: Stats): Promise<boolean> {
    const now = await stat(work);
    if (now.size !== st.size || now.mtimeMs !== st.mtimeMs) return false;
    return !(this.cfg.writer_check && (await heldForWriting(work)) === true);
  }

  /** Moves the file to archive/<day>/ and records its content as ingested, in place of its claim. */
  private async archive(work: string, dropped: string, sha256: string, rows: number, st: Stats): Promise<Outcome> {
    const dest = await moveFile(work, join(this.archiveDir, localDate(new Date())), basename(dropped));
    const entry: ContentEntry = { state: 'archived', path: dropped, size: st.size, mtimeMs: st.mtimeMs, rows, at: Date.now(), movedTo: dest };
    this.writer.setCheckpoints([
      { key: sha256, value: entry },
      { key: claimKey(work), value: null },
    ]);
    this.log.debug({ file: dropped, to: dest }, 'file archived');
    return 'done';
  }

  /** Moves a file that is not ingested to the error folder, with `<name>.reason.txt` beside it. */
  private async reject(work: string, dropped: string, sha256: string, reason: string): Promise<string> {
    const dest = await moveFile(work, this.errorDir, basename(dropped));
    const text = [`file: ${basename(dropped)}`, `sha256: ${sha256}`, `at: ${new Date().toISOString()}`, `collector: ${this.id}`, `reason: ${reason}`, ''];
    await writeFile(`${dest}.reason.txt`, text.join('\n'));
    this.lastError = `${basename(dropped)}: ${reason}`;
    this.noteErrorFile();
    return dest;
  }

  private async moveToError(work: string, dropped: string, sha256: string, reason: string): Promise<Outcome> {
    const dest = await this.reject(work, dropped, sha256, reason);
    const entry: ContentEntry = { state: 'error', path: dropped, size: 0, mtimeMs: 0, rows: 0, at: Date.now(), movedTo: dest };
    this.writer.setCheckpoints([
      { key: sha256, value: entry },
      { key: claimKey(work), value: null },
    ]);
    this.counters.files_error++;
    this.log.error({ file: dropped, to: dest, reason }, 'file moved to the error folder');
    return 'done';
  }

  private async rejectDuplicate(work: string, dropped: string, sha256: string, prior: ContentEntry): Promise<void> {
    const reason = `duplicate: the same content (sha256 ${sha256}) was already ingested from ${prior.path} at ${new Date(prior.at).toISOString()}`;
    const dest = await this.reject(work, dropped, sha256, reason);
    this.writer.setCheckpoints({ key: claimKey(work), value: null });
    this.counters.files_duplicate++;
    this.log.warn({ file: dropped, to: dest, first: prior.path }, 'duplicate file not ingested again');
  }

  /**
   * Files in `.processing/` were claimed before a stop or crash: queued first, in claim order (files
   * claimed by release 0.2, which kept no order, oldest mtime first). A claim whose file is gone was
   * archived (state committed) or removed by hand: its entry is settled here.
   */
  private async recoverClaims(): Promise<void> {
    const entries = await readdir(this.processingDir, { withFileTypes: true }).catch(() => []);
    const files = new Map<string, BigIntStats>();
    for (const e of entries) {
      if (!e.isFile()) continue;
      const p = join(this.processingDir, e.name);
      const st = await stat(p, { bigint: true }).catch(() => undefined);
      if (st) files.set(p, st);
    }
    const claims = this.writer.listCheckpoints<ClaimEntry>().filter((c) => isClaimKey(c.key));
    this.claimSeq = claims.reduce((m, c) => Math.max(m, c.value.seq), 0);
    const settled: CheckpointInput[] = [];
    const now = Date.now();
    for (const { key, value: c } of claims) {
      const st = files.get(c.processing);
      if (st && sameFile(c, { ino: Number(st.ino), birthtimeMs: Number(st.birthtimeMs) })) {
        this.queue.add(c.processing, basename(c.path), st, now, { claimSeq: c.seq });
        continue;
      }
      settled.push(...this.settle(key, c));
    }
    if (settled.length > 0) this.writer.setCheckpoints(settled);
    const unclaimed = [...files].filter(([p]) => !this.queue.has(p)).sort(([pa, a], [pb, b]) => (a.mtimeNs < b.mtimeNs ? -1 : a.mtimeNs > b.mtimeNs ? 1 : byName(pa, pb)));
    for (const [p, st] of unclaimed) this.queue.add(p, basename(p), st, now, { claimSeq: ++this.claimSeq });
  }

  /** Counts the files in error/ (IT fixes and removes them: a file gone from there is an exception closed). */
  private async countErrorFiles(): Promise<void> {
    const entries = await readdir(this.errorDir, { withFileTypes: true }).catch(() => []);
    let count = 0;
    let oldestAt: number | null = null;
    for (const e of entries) {
      if (!e.isFile() || e.name.endsWith('.reason.txt')) continue;
      const st = await stat(join(this.errorDir, e.name)).catch(() => undefined);
      if (!st) continue;
      count++;
      oldestAt = oldestAt === null ? st.mtimeMs : Math.min(oldestAt, st.mtimeMs);
    }
    this.errorFiles = { count, oldestAt: oldestAt === null ? null : Math.round(oldestAt) };
  }

  private noteErrorFile(): void {
    this.errorFiles = { count: this.errorFiles.count + 1, oldestAt: this.errorFiles.oldestAt ?? Date.now() };
  }

  /** Hashes older than the dedupe window are forgotten, so the ledger does not grow forever. */
  private forgetOldHashes(): void {
    const cutoff = Date.now() - this.cfg.dedupe_window;
    const old = this.writer
      .listCheckpoints<ContentEntry>()
      .filter((e) => isContentKey(e.key) && (e.value.state === 'archived' || e.value.state === 'error') && e.value.at < cutoff);
    if (old.length > 0) this.writer.setCheckpoints(old.map((e) => ({ key: e.key, value: null })));
  }
}

/**
 * The claim was written for this very file: same inode and, where the file system keeps one, the
 * same birth time (an inode freed by a file that left `.processing/` is often reused by the next).
 */
function sameFile(c: ClaimEntry, st: { ino: number; birthtimeMs: number }): boolean {
  // Whole ms: a bigint stat (recoverClaims) gives whole ms, a number stat a fraction.
  return c.ino === st.ino && (c.birth === undefined || Math.floor(c.birth) === Math.floor(st.birthtimeMs));
}
