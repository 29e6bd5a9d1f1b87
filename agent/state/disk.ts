import { statSync, statfsSync } from 'node:fs';

/** Free space where the outbox lives, and how much of it the outbox's files take. */
export interface DiskFigures {
  /** Bytes an unprivileged process may still write on the data folder's file system. */
  freeBytes: number;
  totalBytes: number;
  /** The outbox database with its WAL and shared-memory files, as they sit on disk. */
  outboxFileBytes: number;
}

/**
 * Reads the disk figures at most once per `maxAgeMs`: health, /healthz, /metrics and `status`
 * may all ask within the same second, and a network share can make statfs slow.
 */
export class DiskGauge {
  private cached: { at: number; figures: DiskFigures | null } | undefined;

  constructor(
    private readonly dataDir: string,
    private readonly outboxPath: string,
    private readonly maxAgeMs = 5_000,
  ) {}

  /** null when the file system cannot be asked (the folder is gone): a gap, not a crash. */
  read(now = Date.now()): DiskFigures | null {
    if (this.cached && now - this.cached.at < this.maxAgeMs) return this.cached.figures;
    this.cached = { at: now, figures: readDisk(this.dataDir, this.outboxPath) };
    return this.cached.figures;
  }
}

export function readDisk(dataDir: string, outboxPath: string): DiskFigures | null {
  try {
    const fs = statfsSync(dataDir);
    return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize, outboxFileBytes: outboxFileBytes(outboxPath) };
  } catch {
    return null;
  }
}

/** SQLite in WAL mode keeps three files; a missing one (no WAL yet) counts as 0. */
function outboxFileBytes(outboxPath: string): number {
  return ['', '-wal', '-shm'].reduce((n, suffix) => n + (statSync(`${outboxPath}${suffix}`, { throwIfNoEntry: false })?.size ?? 0), 0);
}
