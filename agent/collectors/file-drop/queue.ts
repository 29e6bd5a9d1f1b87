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
  mtimeNs: bigint;
  size: number;
  /** When size or mtime last changed, or a writer was seen holding the file (ms). */
  changedAt: number;
  /** Not before this time (a retry after an error). */
  notBefore: number;
  /** When this item first became ready while an earlier one blocked it (for order_timeout). */
  blockedSince: number | undefined;
}

export interface Pick {
  item: QueueItem;
  /** Set when the item goes ahead of an earlier file that has been blocking it for longer than orderTimeoutMs. */
  overtakes?: QueueItem;
}

/** Natural order (`delta-2` before `delta-10`), as an admin reads a folder. */
export const byName = new Intl.Collator('en', { numeric: true }).compare;

export class DropQueue {
  private readonly items = new Map<string, QueueItem>();

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
  add(path: string, name: string, st: BigIntStats, now: number, claimSeq?: number): QueueItem {
    const existing = this.items.get(path);
    if (existing) return existing;
    const item: QueueItem = {
      path,
      name,
      claimSeq,
      arrival: st.ctimeNs,
      mtimeNs: st.mtimeNs,
      size: Number(st.size),
      changedAt: now,
      notBefore: 0,
      blockedSince: undefined,
    };
    this.items.set(path, item);
    return item;
  }

  delete(path: string): void {
    this.items.delete(path);
  }

  /** The item moved (claimed into `.processing/`): it keeps its place. */
  move(item: QueueItem, to: string, claimSeq: number): void {
    this.items.delete(item.path);
    item.path = to;
    item.claimSeq = claimSeq;
    this.items.set(to, item);
  }

  /** A fresh stat of the item's file: a change restarts its stability clock. */
  observe(item: QueueItem, st: BigIntStats, now: number): void {
    const size = Number(st.size);
    if (size !== item.size || st.mtimeNs !== item.mtimeNs) {
      item.size = size;
      item.mtimeNs = st.mtimeNs;
      item.changedAt = now;
      item.notBefore = 0; // whatever it was waiting for, it is a new file to look at once stable
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
  ordered(): QueueItem[] {
    return [...this.items.values()].sort(this.compare);
  }

  isReady(item: QueueItem, now: number): boolean {
    const stable = item.size === 0 ? this.opts.emptyStableMs : this.opts.stableMs;
    return now >= item.notBefore && now - item.changedAt >= stable;
  }

  /**
   * The next item to handle: the head once it is ready. A ready item behind a head that is not
   * ready waits; once it has waited orderTimeoutMs it goes ahead (reported as `overtakes`).
   */
  next(now: number): Pick | undefined {
    const [head, ...rest] = this.ordered();
    if (!head) return undefined;
    if (this.isReady(head, now)) {
      head.blockedSince = undefined;
      return { item: head };
    }
    for (const item of rest) {
      if (!this.isReady(item, now)) continue;
      item.blockedSince ??= now;
      if (now - item.blockedSince >= this.opts.orderTimeoutMs) return { item, overtakes: head };
      return undefined;
    }
    return undefined;
  }

  /** The first ready item waiting behind the head (for the "waits for an earlier file" log line). */
  firstBlocked(): QueueItem | undefined {
    return this.ordered().find((i) => i.blockedSince !== undefined);
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
        return cmp(a.arrival, b.arrival) || cmp(a.mtimeNs, b.mtimeNs) || byName(a.name, b.name);
    }
  };
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
