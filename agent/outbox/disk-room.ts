import { existsSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** What the outbox's database says about its pages (PRAGMAs on its own connection, WAL included). */
export interface DbPages {
  pageSize: number;
  /** The database's size in pages as this connection sees it (pages still in the WAL included). */
  pageCount: number;
  /** Free pages inside the database (left by deletes): appends reuse them without growing the file. */
  freelistCount: number;
  /** `wal_autocheckpoint`: the WAL is checkpointed once it holds this many pages. */
  walAutocheckpoint: number;
}

export interface DiskRoomOptions {
  /** The outbox database file. */
  path: string;
  /** Free space appends leave to everything else on the file system (outbox.disk_min_free). */
  minFreeBytes: number;
  /** Size of the reserve file, `<path>-reserve` (outbox.disk_reserve); 0: none. */
  reserveBytes: number;
  pages: () => DbPages;
  /** Free bytes on the file system holding `path` (statfs by default; tests may shrink it). */
  fsFree?: () => number;
}

/** One measurement of the room an append would leave (all in bytes). */
export interface DiskMeasure {
  fsFree: number;
  /** WAL pages beyond the end of the database file: a checkpoint must grow the file by this much. */
  checkpointDebt: number;
  /** How much more the WAL file may grow before a checkpoint lets it start over. */
  walGrowth: number;
  freelist: number;
  /** What the append would take from the file system (its footprint less the database's free pages). */
  appendGrowth: number;
  /** The file system's free space left above the floor once the append and both of the above have taken theirs. */
  spare: number;
}

/** A transaction can take the WAL past its checkpoint size, and the -shm index grows with it. */
const WAL_SLACK = 1 << 20;
/** Re-measure at least this often even when the counted-down spare says there is room. */
const MEASURE_EVERY_MS = 1_000;

/**
 * The outbox's share of its file system. SQLite in WAL mode writes every transaction (acks and
 * deletes too) into the WAL first, and a checkpoint later copies those pages into the database,
 * growing it by any page past its end; only once a checkpoint completes does the WAL start over
 * inside the space it already has. So the space an ack needs is not the ack's own few pages: it is
 * room for the checkpoint that lets the WAL be reused. When appends take the file system to the
 * last byte, that room is gone, the checkpoint fails half-way (eating what is left), and from then
 * on no write can commit: the ack that would let pruning free pages cannot be recorded.
 *
 * The rule here keeps that room: an append goes only if, after it, the file system still has
 * `minFreeBytes` free *beyond* what the outbox has already promised itself — the checkpoint debt
 * (WAL pages past the end of the database) and the WAL's growth up to its checkpoint size. Pages
 * freed inside the database by pruning count as room for appends (they are reused), never as room
 * for the WAL. Acks, pruning and checkpoints then always have space; appends resume as soon as
 * pruning frees pages, without the file system getting any bytes back.
 *
 * The reserve file is for what the rule cannot foresee: another program filling the same file
 * system. It is given up when a write fails for lack of space (so the ack path can go on) and made
 * again before appends resume.
 */
export class DiskRoom {
  readonly minFreeBytes: number;
  readonly reserveBytes: number;
  readonly reservePath: string;
  private readonly path: string;
  private readonly pages: () => DbPages;
  private readonly fsFreeOf: () => number;
  /** The last measurement's spare, counted down by each append since (a statfs per append is not needed far from the floor). */
  private counted = { at: 0, spare: Number.NEGATIVE_INFINITY };

  constructor(opts: DiskRoomOptions) {
    this.path = opts.path;
    this.minFreeBytes = opts.minFreeBytes;
    this.reserveBytes = opts.reserveBytes;
    this.reservePath = `${opts.path}-reserve`;
    this.pages = opts.pages;
    this.fsFreeOf = opts.fsFree ?? (() => statfsFree(dirname(opts.path)));
  }

  /**
   * Whether an append of about `bytes` (record bytes) leaves the floor, and (when `withReserve`) room
   * to make the reserve again too. Measures when the counted-down spare cannot tell.
   */
  roomFor(bytes: number, withReserve = false): boolean {
    const need = appendFootprint(bytes);
    if (!withReserve && this.counted.spare >= need && Date.now() - this.counted.at < MEASURE_EVERY_MS) {
      this.counted.spare -= need;
      return true;
    }
    const m = this.measure(bytes);
    const reserve = withReserve && !this.hasReserve() ? this.reserveBytes : 0;
    const ok = m.spare - reserve >= 0;
    // Counted down from here as if every append grew the file (conservative: freed pages are reused first).
    this.counted = { at: Date.now(), spare: ok ? m.spare - reserve : Number.NEGATIVE_INFINITY };
    return ok;
  }

  /** Forget the counted-down spare (space was freed, or a write failed): the next check measures. */
  forget(): void {
    this.counted = { at: 0, spare: Number.NEGATIVE_INFINITY };
  }

  measure(bytes = 0): DiskMeasure {
    const p = this.pages();
    const fsFree = this.fsFreeOf();
    const checkpointDebt = Math.max(0, p.pageCount * p.pageSize - fileSize(this.path));
    const walCap = walSizeLimit(p.pageSize, p.walAutocheckpoint);
    const walGrowth = Math.max(0, walCap - fileSize(`${this.path}-wal`));
    const freelist = p.freelistCount * p.pageSize;
    const appendGrowth = Math.max(0, appendFootprint(bytes) - freelist);
    return { fsFree, checkpointDebt, walGrowth, freelist, appendGrowth, spare: fsFree - checkpointDebt - walGrowth - appendGrowth - this.minFreeBytes };
  }

  /** Why appends wait, for logs and `status`: what is free, what they leave, what this one needed. */
  describe(m: DiskMeasure = this.measure()): string {
    const wal = m.checkpointDebt + m.walGrowth;
    const reserve = this.hasReserve() ? '' : ` and ${mib(this.reserveBytes)} to make the reserve again`;
    return `${mib(m.fsFree)} free on the file system; appends leave ${mib(this.minFreeBytes + wal)} free (outbox.disk_min_free ${mib(this.minFreeBytes)} + ${mib(wal)} kept for the write-ahead log), this one needed ${mib(m.appendGrowth)}${reserve}`;
  }

  hasReserve(): boolean {
    return this.reserveBytes <= 0 || existsSync(this.reservePath);
  }

  /** Writes the reserve file (when one is configured and missing); false when the disk has no room for it. */
  makeReserve(): boolean {
    if (this.reserveBytes <= 0) return true;
    try {
      writeFileSync(this.reservePath, Buffer.alloc(this.reserveBytes), { flag: 'wx' });
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') return true;
      rmSync(this.reservePath, { force: true });
      if (code === 'ENOSPC' || code === 'EDQUOT') return false;
      throw err;
    }
  }

  /** Gives the reserve back to the file system; false when there was none to give. */
  releaseReserve(): boolean {
    if (this.reserveBytes <= 0) return false;
    try {
      rmSync(this.reservePath);
      this.forget();
      return true;
    } catch {
      return false;
    }
  }

  removeReserve(): void {
    if (this.reserveBytes > 0) rmSync(this.reservePath, { force: true });
  }
}

/**
 * The size the WAL file grows to between checkpoints (and its `journal_size_limit`: a WAL that grew
 * past it while a reader held it is cut back to it when it starts over, so that room is not kept).
 */
export function walSizeLimit(pageSize: number, walAutocheckpoint: number): number {
  return walAutocheckpoint * pageSize + WAL_SLACK;
}

/** An upper bound of the bytes `bytes` of record JSON take in the database: seq prefixes, row and b-tree overhead, page slack. */
export function appendFootprint(bytes: number): number {
  return bytes > 0 ? Math.ceil(bytes * 1.25) + 16 * 1024 : 0;
}

/** Bytes available to an unprivileged writer on the file system holding `dir` (Infinity when unreadable: SQLite will say). */
function statfsFree(dir: string): number {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function mib(n: number): string {
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}
