import { mkdir, readdir, rename, stat, copyFile, unlink, writeFile, access } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, join, relative } from 'node:path';
import chokidar, { type FSWatcher } from 'chokidar';
import picomatch from 'picomatch';
import { isErpEdgeError } from '../../../common/errors.js';
import { LogThrottle } from '../../../common/log-throttle.js';
import type { Logger } from '../../../common/logger.js';
import { EXCEPTION_KINDS } from '../../../common/wire-v2.js';
import type { Collector, CollectorContext, CollectorStats } from '../../host/collector.js';
import type { CaptureInput, Writer } from '../../host/writer.js';
import { fingerprintFile, readRows, validateFile, type FileFingerprint, type FileRow, type ReadOptions } from './formats.js';
import type { FileDropConfig } from './schema.js';

/**
 * Names that writers use while a file is still being written (write-to-temp-then-rename):
 * they are never read; the final name appears by rename once the file is complete.
 */
const TEMP_NAMES = ['*.tmp', '*.temp', '*.part', '*.partial', '*.filepart', '*.crdownload', '~*', '.*'];

/**
 * How often the ledger forgets hashes older than dedupe_window, and error/ is counted again: hourly,
 * or four times per window when the window is shorter, so a hash is forgotten at most a quarter of
 * the window late.
 */
function housekeepingMs(dedupeWindowMs: number): number {
  return Math.min(3_600_000, Math.max(250, Math.floor(dedupeWindowMs / 4)));
}

type FileState = 'claimed' | 'committed' | 'archived' | 'error';

/** Ledger entry, stored as this collector's checkpoint keyed by the content's SHA-256. */
interface LedgerEntry {
  state: FileState;
  /** Where the file was dropped (its name is the one records, archive and error folders use). */
  path: string;
  /** Where it was claimed into (`.processing/`) and is read from. */
  processing?: string;
  size: number;
  mtimeMs: number;
  /** Records committed to the outbox so far (resume point after a crash). */
  rows: number;
  at: number;
  movedTo?: string;
}

export function create(cfg: FileDropConfig, ctx: CollectorContext): Collector {
  return new FileDropCollector(cfg, ctx);
}

/**
 * Watches folders for ERP file drops. A file moves through seen → claimed → committed →
 * archived (or error), tracked in the outbox by content hash, so a restart at any point
 * resumes where it stopped and the same content is never ingested twice.
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
  /** Claimed path → dropped path, for files being handled (the ledger has it once claimed there). */
  private readonly droppedNames = new Map<string, string>();
  private readonly writer: Writer;
  private readonly log: Logger;
  private readonly fail: (err: unknown) => void;
  private readonly isIncluded: (rel: string) => boolean;
  private watcher: FSWatcher | undefined;
  private rescanTimer: NodeJS.Timeout | undefined;
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  /** Files being checked for a stable size by enqueueWhenStable. */
  private readonly settling = new Set<string>();
  private draining: Promise<void> | undefined;
  private readonly abort = new AbortController();
  private readonly counters = { files_ingested: 0, files_error: 0, files_duplicate: 0, records: 0, rows_dead_lettered: 0, io_errors: 0 };
  private lastError = '';
  private readonly retryLog = new LogThrottle(60_000);
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
    // The host's stop signal ends waits for outbox space and the drain loop.
    ctx.signal.addEventListener('abort', () => this.abort.abort(), { once: true });
    const include = picomatch(cfg.include, { dot: false });
    const excluded = picomatch([...TEMP_NAMES, ...cfg.exclude], { dot: true });
    this.isIncluded = (rel) => include(rel) && !excluded(rel);
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
    // Claimed before a stop or crash: finish them first, oldest claim first.
    for (const p of await claimedFiles(this.processingDir)) this.enqueue(p);
    this.watcher = chokidar.watch(this.dir, {
      depth: 0,
      ignoreInitial: false, // files already present at start are picked up
      usePolling: this.cfg.poll,
      interval: this.cfg.poll_interval,
      binaryInterval: this.cfg.poll_interval,
      // chokidar compares sizes only from its second poll on, and emits as soon as stable_time has passed since the
      // last change it saw: with pollInterval >= stable_time (and no change events, as when polling a share slower
      // than stable_time) a file still being written was emitted unchecked. Several polls per stable_time fix that.
      awaitWriteFinish: {
        stabilityThreshold: this.cfg.stable_time,
        pollInterval: Math.max(10, Math.min(500, Math.floor(this.cfg.stable_time / 4))),
      },
      ignored: (p, stats) => p !== this.dir && (stats?.isDirectory() === true || !this.isIncluded(relative(this.dir, p))),
    });
    // chokidar applies awaitWriteFinish only to events after 'ready': before that (the initial scan, which can
    // take a while on a big share) the size-stable check is done here.
    let ready = false;
    const onFile = (p: string) => (ready ? this.enqueue(p) : void this.enqueueWhenStable(p));
    this.watcher.on('add', onFile);
    this.watcher.on('change', onFile);
    // The folder went away (share offline), or the OS ran out of watches: a new watcher, after the
    // host's back-off, is the way back. Files claimed meanwhile stay in .processing/ and are finished first.
    this.watcher.on('error', (err) => {
      this.lastError = (err as Error).message;
      this.fail(err);
    });
    await new Promise<void>((resolve) => this.watcher!.once('ready', () => resolve()));
    ready = true;
    // chokidar lists the folder first and only then starts watching it; a file created in between is not
    // reported until the folder changes again (with poll: true, until after polling's first stat, which lands
    // after 'ready'), which on a quiet share can be hours. One more listing, once watching is surely on, closes that gap.
    this.rescanTimer = setTimeout(() => void this.rescan(), this.cfg.poll ? this.cfg.poll_interval : this.cfg.stable_time);
    this.rescanTimer.unref();
    this.log.info({ dir: this.dir, poll: this.cfg.poll, format: this.cfg.format, stream: this.stream }, 'watching for file drops');
  }

  async stop(): Promise<void> {
    this.abort.abort();
    clearTimeout(this.rescanTimer);
    clearInterval(this.housekeepingTimer);
    await this.watcher?.close();
    await this.draining;
  }

  stats(): CollectorStats {
    return {
      counters: { ...this.counters, queued: this.queue.length, last_error: this.lastError },
      exceptions: [{ kind: EXCEPTION_KINDS.fileError, count: this.errorFiles.count, oldest_at: this.errorFiles.oldestAt }],
    };
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

  /** Resolves once every queued file has been handled (used by tests and shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  /**
   * A file present at start may still be being written (a transfer in progress when the agent started):
   * it is queued once its size and mtime have not changed for stable_time, as awaitWriteFinish does later on.
   */
  private async enqueueWhenStable(path: string): Promise<void> {
    const signal = this.abort.signal;
    if (this.settling.has(path)) return;
    this.settling.add(path);
    try {
      let prev = await stat(path);
      for (;;) {
        await sleep(this.cfg.stable_time, undefined, { signal });
        const cur = await stat(path);
        if (cur.size === prev.size && cur.mtimeMs === prev.mtimeMs) break;
        prev = cur;
      }
    } catch (err) {
      if (signal.aborted || (err as NodeJS.ErrnoException).code === 'ENOENT') return;
      // Any other stat error: queue it anyway, handleFile reports it and retries.
    } finally {
      this.settling.delete(path);
    }
    this.enqueue(path);
  }

  /** Queues (once stable) the included files that are in the folder but that chokidar has not reported. */
  private async rescan(): Promise<void> {
    if (this.abort.signal.aborted || !this.watcher) return;
    const entries = await readdir(this.dir, { withFileTypes: true }).catch((err: Error) => {
      this.log.warn({ dir: this.dir, err: { message: err.message } }, 'cannot list the drop folder');
      return [];
    });
    if (this.abort.signal.aborted || !this.watcher) return;
    const known = new Set(this.watcher.getWatched()[this.dir] ?? []);
    for (const e of entries) {
      if (!e.isFile() || known.has(e.name) || !this.isIncluded(e.name)) continue;
      const path = join(this.dir, e.name);
      if (this.queued.has(path)) continue;
      this.log.info({ file: path }, 'file not reported by the watcher: picked up by a rescan');
      void this.enqueueWhenStable(path);
    }
  }

  private enqueue(path: string): void {
    if (this.abort.signal.aborted || this.queued.has(path)) return;
    this.queued.add(path);
    this.queue.push(path);
    this.startDrain();
  }

  private startDrain(): void {
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      // A file queued while the loop was ending must not wait for the next drop.
      if (this.queue.length > 0 && !this.abort.signal.aborted) this.startDrain();
    });
  }

  /** One file at a time, in arrival order: records of a stream stay in file order. */
  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.abort.signal.aborted) {
      const path = this.queue.shift()!;
      // Free at once: a new file under this name during the handling is a new drop, queued anew.
      this.queued.delete(path);
      let retry = path;
      try {
        const claimed = await this.claim(path);
        if (!claimed) continue;
        retry = claimed.work; // from here on the file lives in .processing/
        await this.handleFile(claimed);
      } catch (err) {
        if (this.abort.signal.aborted) return;
        this.counters.io_errors++;
        this.lastError = `${basename(path)}: ${(err as Error).message}`;
        // A file locked for hours must not log every 5 s: one line a minute per file and error.
        const t = this.retryLog.take(`${path}:${(err as Error).message}`);
        if (t) {
          const e = { message: (err as Error).message, code: (err as NodeJS.ErrnoException).code };
          this.log.error({ file: path, err: e, retries_since_last_line: t.suppressed }, 'file not processed; retrying every 5s');
        }
        // Locked or unreadable (e.g. a writer still holds it on Windows): try again later.
        setTimeout(() => this.enqueue(retry), 5_000).unref();
      }
    }
  }

  private async handleFile(claimed: { work: string; dropped?: string }): Promise<void> {
    const { work } = claimed;
    const st = await stat(work);
    const fp = await fingerprintFile(work, this.cfg.encoding);
    const entry = this.writer.getCheckpoint<LedgerEntry>(fp.sha256);
    // Claimed before a restart: the ledger knows the name it was dropped under (if it got that far).
    const dropped = claimed.dropped ?? (entry?.processing === work ? entry.path : join(this.dir, basename(work)));
    // A file with no records cannot be ingested twice: a repeated empty export is just archived.
    const ingestedBefore = entry !== undefined && entry.rows > 0;
    if (entry?.state === 'committed' && entry.processing === work) return this.archive(work, fp, entry); // crashed after commit, before the move
    if (ingestedBefore && (entry.state === 'archived' || entry.state === 'committed')) return this.rejectDuplicate(work, dropped, fp, entry);
    const opts: ReadOptions = { format: this.cfg.format, encoding: fp.encoding, delimiter: this.cfg.delimiter, keyColumns: this.cfg.key };
    try {
      // Validate first: a malformed file ingests nothing, rather than its first half.
      await validateFile(work, opts);
    } catch (err) {
      if (isErpEdgeError(err, 'ERP_FILE_MALFORMED')) return this.moveToError(work, dropped, fp, err.message);
      throw err;
    }
    // Same content claimed before a crash (this copy or another): resume after its committed rows.
    const resumeFrom = entry?.state === 'claimed' ? entry.rows : 0;
    const progress: LedgerEntry = { state: 'claimed', path: dropped, processing: work, size: st.size, mtimeMs: st.mtimeMs, rows: resumeFrom, at: Date.now() };
    if (resumeFrom > 0) this.log.info({ file: dropped, resumeFrom }, 'resuming a partly ingested file');
    this.writer.setCheckpoints({ key: fp.sha256, value: progress });
    const committed = await this.ingest(work, fp, opts, progress);
    if (committed) await this.archive(work, fp, committed);
  }

  /**
   * Moves a dropped file into `.processing/` (a file already there was claimed before a restart).
   * Returns where to read it and the path it was dropped under; undefined if it is gone.
   */
  private async claim(path: string): Promise<{ work: string; dropped?: string } | undefined> {
    if (dirname(path) === this.processingDir) {
      // A retry: the file may have moved on already (archived, then a later step failed).
      const here = await stat(path).catch(() => undefined);
      return here?.isFile() ? { work: path, dropped: this.droppedNames.get(path) } : undefined;
    }
    const st = await stat(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    if (!st?.isFile()) return undefined;
    const work = await moveFile(path, this.processingDir);
    this.droppedNames.set(work, path); // for retries before the ledger knows it
    return { work, dropped: path };
  }

  /**
   * Streams records into the outbox, batch by batch, each with the file's progress as checkpoint.
   * The writer waits for outbox space itself; a row it cannot take (over max_record_bytes) goes to
   * the dead-letter table with its reason, and the file goes on.
   */
  private async ingest(path: string, fp: FileFingerprint, opts: ReadOptions, claimed: LedgerEntry): Promise<LedgerEntry | undefined> {
    const file = basename(claimed.path);
    const identity = rowIdentity(this.id, fp, this.cfg.key, claimed.mtimeMs);
    let rows = claimed.rows;
    let batch: CaptureInput[] = [];
    const flush = async (last: boolean) => {
      const value: LedgerEntry = { ...claimed, rows: rows + batch.length, state: last ? 'committed' : 'claimed', at: Date.now() };
      const r = await this.writer.append(batch, { key: fp.sha256, value }, { invalid: 'dead_letter' });
      rows += batch.length;
      this.counters.records += r.appended;
      this.counters.rows_dead_lettered += r.deadLettered;
      batch = [];
      return value;
    };
    for await (const row of readRows(path, opts, claimed.rows)) {
      batch.push(identity(row, rows + batch.length + 1, { file, line: row.line, fields: row.fields }));
      if (batch.length >= this.cfg.batch_size) await flush(false);
      if (this.abort.signal.aborted) return undefined; // the claim keeps our place
    }
    const done = await flush(true);
    this.counters.files_ingested++;
    this.log.info({ file: claimed.path, records: rows, sha256: fp.sha256 }, 'file ingested');
    return done;
  }

  private async archive(work: string, fp: FileFingerprint, entry: LedgerEntry): Promise<void> {
    const dest = await moveFile(work, join(this.archiveDir, localDate(new Date())), basename(entry.path));
    this.droppedNames.delete(work);
    this.writer.setCheckpoints({ key: fp.sha256, value: { ...entry, state: 'archived', movedTo: dest, at: Date.now() } });
    this.log.debug({ file: entry.path, to: dest }, 'file archived');
  }

  /** Moves a file that is not ingested to the error folder, with `<name>.reason.txt` beside it. */
  private async reject(work: string, dropped: string, fp: FileFingerprint, reason: string): Promise<string> {
    const dest = await moveFile(work, this.errorDir, basename(dropped));
    this.droppedNames.delete(work);
    const text = [`file: ${basename(dropped)}`, `sha256: ${fp.sha256}`, `at: ${new Date().toISOString()}`, `collector: ${this.id}`, `reason: ${reason}`, ''];
    await writeFile(`${dest}.reason.txt`, text.join('\n'));
    this.lastError = `${basename(dropped)}: ${reason}`;
    return dest;
  }

  private async moveToError(work: string, dropped: string, fp: FileFingerprint, reason: string): Promise<void> {
    const dest = await this.reject(work, dropped, fp, reason);
    const st: LedgerEntry = { state: 'error', path: dropped, size: fp.size, mtimeMs: 0, rows: 0, at: Date.now(), movedTo: dest };
    this.writer.setCheckpoints({ key: fp.sha256, value: st });
    this.counters.files_error++;
    this.noteErrorFile();
    this.log.error({ file: dropped, to: dest, reason }, 'malformed file moved to the error folder');
  }

  private async rejectDuplicate(work: string, dropped: string, fp: FileFingerprint, entry: LedgerEntry): Promise<void> {
    const reason = `duplicate: the same content (sha256 ${fp.sha256}) was already ingested from ${entry.path} at ${new Date(entry.at).toISOString()}`;
    const dest = await this.reject(work, dropped, fp, reason);
    this.counters.files_duplicate++;
    this.noteErrorFile();
    this.log.warn({ file: dropped, to: dest, first: entry.path }, 'duplicate file not ingested again');
  }

  private noteErrorFile(): void {
    this.errorFiles = { count: this.errorFiles.count + 1, oldestAt: this.errorFiles.oldestAt ?? Date.now() };
  }

  /** Hashes older than the dedupe window are forgotten, so the ledger does not grow forever. */
  private forgetOldHashes(): void {
    const cutoff = Date.now() - this.cfg.dedupe_window;
    const old = this.writer
      .listCheckpoints<LedgerEntry>()
      .filter((e) => (e.value.state === 'archived' || e.value.state === 'error') && e.value.at < cutoff);
    if (old.length > 0) this.writer.setCheckpoints(old.map((e) => ({ key: e.key, value: null })));
  }
}

/**
 * Record identity for the rows of one file (docs/wire.md). Without key columns: the file's hash and
 * the row number (as release 0.1, so a file being ingested across an upgrade keeps its ids). With
 * them: source + key values + a hash of the row, so the same row re-exported in another file gets
 * the same id and the relay stores it once, while a changed row gets a new id with the same key.
 */
export function rowIdentity(source: string, fp: FileFingerprint, keyColumns: readonly string[] | undefined, mtimeMs: number) {
  const prefix = fp.sha256.slice(0, 16);
  const common = { correlation_id: `file:${prefix}`, source_ts: Math.round(mtimeMs) };
  if (!keyColumns) {
    return (_row: FileRow, n: number, data: unknown): CaptureInput => ({ id: `${prefix}:${n}`, data, ...common });
  }
  return (row: FileRow, _n: number, data: unknown): CaptureInput => {
    const key = keyColumns.map((k) => encodeKeyPart(String(row.fields[k]))).join('|');
    const rowHash = createHash('sha256').update(JSON.stringify(row.fields)).digest('hex').slice(0, 16);
    return { id: `${source}/${key}/${rowHash}`, key, data, ...common };
  };
}

/** `%` and `|` percent-encoded, so joined key parts stay unambiguous. */
function encodeKeyPart(v: string): string {
  return v.replace(/[%|]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** Moves a file into a folder, never overwriting: a taken name gets a numeric suffix. Works across volumes. */
async function moveFile(src: string, destDir: string, name = basename(src)): Promise<string> {
  await mkdir(destDir, { recursive: true });
  let dest = join(destDir, name);
  for (let i = 1; await exists(dest); i++) dest = join(destDir, `${name}.${i}`);
  try {
    await rename(src, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(src, dest);
    await unlink(src);
  }
  return dest;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** YYYY-MM-DD in the machine's time zone: the warehouse's day, as IT reads the archive. */
function localDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** Files in a `.processing` folder, oldest first (claim order survives a restart that way). */
async function claimedFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
  const files = await Promise.all(
    entries.filter((e) => e.isFile()).map(async (e) => ({ path: join(dir, e.name), mtimeMs: (await stat(join(dir, e.name))).mtimeMs })),
  );
  return files.sort((a, b) => a.mtimeMs - b.mtimeMs).map((f) => f.path);
}
