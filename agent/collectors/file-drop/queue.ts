import type { BigIntStats } from 'node:fs';

/**
 * The files one collector has seen and not finished, in the order they are to be ingested, with
 * the evidence that each is complete. One list and one clock for all files (no timer per file):
 * a file is ready once its size and mtime have not changed for `stableMs` (`emptyStableMs` while
 * it is empty), and the head of the list goes first. A ready file behind a head that is still
 * being written waits, for at most `orderTimeoutMs`.
 */

export type FileOrder = 'arrival' | 'mtime' | 'name';

export interface QueueOptions {
  order: FileOrder;
  stableMs: number;
  emptyStableMs: number;
  orderTimeoutMs: number;
}

export interface QueueItem {
  /** Where the file is now (the drop folder, or `.processing/` once claimed). */
  path: string;
  /** The name it was dropped under (names order and logs use it). */
  name: string;
  /** Claimed items go before every unclaimed one, in claim order. */
  claimSeq: number | undefined;
  /** ctime when first seen: when the file got its name here (a rename or a create), whatever order the watcher reports in. */
  arrival: bigint;
  /**
   * The watcher's report order (0 for files found at start-up): file timestamps are coarse (a
   * kernel tick), so files renamed in back to back share a ctime and this tells them apart.
   */
  seen: number;
  mtimeNs: bigint;
  size: number;
  /** When size or mtime last changed, or a writer was seen holding the file (ms). */
  changedAt: number;
  /** Not before this time (a retry after an error). */
  notBefore: number;
}

export interface Pick {
  item: QueueItem;
  /** Set when the item goes ahead of an earlier file that has been blocking it for longer than orderTimeoutMs. */
  overtakes?: QueueItem;
}

/** A head that is not ready while a file behind it is, since when. */
export interface Block {
  head: QueueItem;
  /** The first ready file behind it, if one is waiting now. */
  waiting?: QueueItem | undefined;
  since: number;
}

/** Natural order (`delta-2` before `delta-10`), as an admin reads a folder. */
export const byName = new Intl.Collator('en', { numeric: true }).compare;

export class DropQueue {
  private readonly items = new Map<string, QueueItem>();
  /** Sorted once per change, not per look (a backlog can hold tens of thousands of files). */
  private sorted: QueueItem[] | undefined;
  private block: Block | undefined;

  constructor(private readonly opts: QueueOptions) {}

  get size(): number {
    return this.items.size;
  }

  has(path: string): boolean {
    return this.items.has(path);
  }

  get(path: string): QueueItem | undefined {
    return this.items.get(path);
  }

  /** A file seen for the first time; its stability clock starts now. */
  add(path: string, name: string, st: BigIntStats, now: number, opts: { claimSeq?: number; seen?: number } = {}): QueueItem {
    const existing = this.items.get(path);
    if (existing) return existing;
    const item: QueueItem = {
      path,
      name,
      claimSeq: opts.claimSeq,
      arrival: st.ctimeNs,
      seen: opts.seen ?? 0,
      mtimeNs: st.mtimeNs,
      size: Number(st.size),
      changedAt: now,
      notBefore: 0,
    };
    this.items.set(path, item);
    this.sorted = undefined;
    return item;
  }

  delete(path: string): void {
    if (this.items.delete(path)) this.sorted = undefined;
  }

  /** The item moved (claimed into `.processing/`): it keeps its place. */
  move(item: QueueItem, to: string, claimSeq: number): void {
    this.items.delete(item.path);
    item.path = to;
    item.claimSeq = claimSeq;
    this.items.set(to, item);
    this.sorted = undefined;
  }

  /** A fresh stat of the item's file: a change restarts its stability clock. */
  observe(item: QueueItem, st: BigIntStats, now: number): void {
    const size = Number(st.size);
    if (size !== item.size || st.mtimeNs !== item.mtimeNs) {
      item.size = size;
      item.mtimeNs = st.mtimeNs;
      item.changedAt = now;
      item.notBefore = 0; // whatever it was waiting for, it is a new file to look at once stable
      if (this.opts.order === 'mtime') this.sorted = undefined;
    }
  }

  /** Not complete after all (a writer holds it, or it grew while read): wait a full stable time again. */
  unsettle(item: QueueItem, now: number): void {
    item.changedAt = now;
  }

  /** After an error: try again no sooner than `delayMs` from now. */
  defer(item: QueueItem, now: number, delayMs: number): void {
    item.notBefore = now + delayMs;
  }

  /** Items in ingestion order. */
  ordered(): readonly QueueItem[] {
    this.sorted ??= [...this.items.values()].sort(this.compare);
    return this.sorted;
  }

  isReady(item: QueueItem, now: number): boolean {
    const stable = item.size === 0 ? this.opts.emptyStableMs : this.opts.stableMs;
    return now >= item.notBefore && now - item.changedAt >= stable;
  }

  /**
   * The next item to handle: the head once it is ready. A ready item behind a head that is not
   * ready waits; once the head has been blocking for orderTimeoutMs, every ready item behind it
   * goes, in order (reported as `overtakes`), until the head is handled or gone.
   */
  next(now: number): Pick | undefined {
    const order = this.ordered();
    const head = order[0];
    // The clock keeps running while the same head stays stuck (also while it is looked at again and
    // found still held open), even between two waiting files; a new head starts afresh.
    if (this.block && this.block.head !== head) this.block = undefined;
    if (head && this.isReady(head, now)) return { item: head };
    const waiting = order.find((i) => i !== head && this.isReady(i, now));
    if (!head || !waiting) {
      if (this.block) this.block.waiting = undefined;
      return undefined;
    }
    this.block ??= { head, since: now };
    this.block.waiting = waiting;
    return now - this.block.since >= this.opts.orderTimeoutMs ? { item: waiting, overtakes: head } : undefined;
  }

  /** The head holding back a ready file, if any (for the "waits for an earlier file" log line). */
  blocked(): Required<Block> | undefined {
    const b = this.block;
    return b?.waiting && this.items.get(b.head.path) === b.head ? (b as Required<Block>) : undefined;
  }

  private readonly compare = (a: QueueItem, b: QueueItem): number => {
    if (a.claimSeq !== undefined || b.claimSeq !== undefined) {
      if (a.claimSeq === undefined) return 1;
      if (b.claimSeq === undefined) return -1;
      if (a.claimSeq !== b.claimSeq) return a.claimSeq - b.claimSeq;
    }
    switch (this.opts.order) {
      case 'name':
        return byName(a.name, b.name) || cmp(a.mtimeNs, b.mtimeNs);
      case 'mtime':
        return cmp(a.mtimeNs, b.mtimeNs) || byName(a.name, b.name);
      default:
        return cmp(a.arrival, b.arrival) || a.seen - b.seen || cmp(a.mtimeNs, b.mtimeNs) || byName(a.name, b.name);
    }
  };
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
