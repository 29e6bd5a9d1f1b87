import { basename } from 'node:path';

/**
 * What a file-drop collector remembers, as checkpoints in the outbox (written in the same
 * transaction as the records they account for). Two kinds of entry:
 *
 * - a **claim**, keyed `claim:<name in .processing/>`, for each file being ingested: where it was
 *   dropped, its inode, the rows committed so far and the id prefix its rows carry. Keyed by the
 *   claimed file rather than by its content, so a file that grows after it was claimed (a writer
 *   that paused longer than stable_time) keeps its place and its ids.
 * - a **content entry**, keyed by the content's SHA-256, for each file archived (or refused):
 *   the same content dropped again within dedupe_window is refused as a duplicate.
 * - a **sighting**, keyed `seen:<name>`, for each file waiting in the drop folder: the order the
 *   watcher reported it in, so files that share a timestamp keep their drop order across a restart.
 *
 * Release 0.1 and 0.2 kept files in flight as content entries too (state claimed/committed, with
 * `processing` naming the claimed file since 0.2): the collector still reads those, and turns one
 * into a claim the first time it meets it, so a file half ingested across an upgrade resumes.
 */

export type ContentState = 'claimed' | 'committed' | 'archived' | 'error';

/** Content entry (and the in-flight entries of releases 0.1/0.2). */
export interface ContentEntry {
  state: ContentState;
  /** Where the file was dropped (its name is the one records, archive and error folders use). */
  path: string;
  /** 0.2: where it was claimed into and read from. */
  processing?: string;
  size: number;
  mtimeMs: number;
  rows: number;
  at: number;
  movedTo?: string;
}

export interface ClaimEntry {
  state: 'claimed' | 'committed';
  /** Where the file was dropped. */
  path: string;
  processing: string;
  /** A later file claimed under the same name in .processing/ is a different inode, or the same one born again. */
  ino: number;
  /** Birth time (0 where the file system keeps none). */
  birth?: number;
  /** Claim order: files claimed before a restart are finished in this order. */
  seq: number;
  /** Rows committed so far: the resume point. */
  rows: number;
  /** Id prefix of this file's rows (the content hash when first read, as in 0.1/0.2). */
  prefix: string;
  /** Content hash when last read. */
  sha256: string;
  size: number;
  mtimeMs: number;
  at: number;
}

/** A file waiting in the drop folder, as first reported. */
export interface SeenEntry {
  seen: number;
  ino: number;
}

const CLAIM = 'claim:';
const SEEN = 'seen:';

export function seenKey(name: string): string {
  return SEEN + name;
}

export function isSeenKey(key: string): boolean {
  return key.startsWith(SEEN);
}

/** Content entries are keyed by a bare SHA-256. */
export function isContentKey(key: string): boolean {
  return /^[0-9a-f]{64}$/.test(key);
}

export function claimKey(processingPath: string): string {
  return CLAIM + basename(processingPath);
}

export function isClaimKey(key: string): boolean {
  return key.startsWith(CLAIM);
}
