import type { BigIntStats } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DropQueue, type QueueOptions } from '../../../../agent/collectors/file-drop/queue.js';

const opts: QueueOptions = { order: 'arrival', stableMs: 100, emptyStableMs: 1_000, orderTimeoutMs: 5_000 };

/** The fields of a stat the queue reads. */
function st(ctime: number, mtime: number, size = 10): BigIntStats {
  return { ctimeNs: BigInt(ctime), mtimeNs: BigInt(mtime), size: BigInt(size) } as BigIntStats;
}

describe('DropQueue', () => {
  it('orders by arrival (ctime when first seen), then mtime, then name, whatever order files were reported in', () => {
    const q = new DropQueue(opts);
    q.add('/d/c', 'c', st(30, 1), 0);
    q.add('/d/b2', 'b2', st(20, 5), 0);
    q.add('/d/a', 'a', st(10, 9), 0);
    q.add('/d/b1', 'b1', st(20, 5), 0);
    q.add('/d/b0', 'b0', st(20, 4), 0);
    expect(q.ordered().map((i) => i.name)).toEqual(['a', 'b0', 'b1', 'b2', 'c']);
  });

  it('tells files with one ctime apart by the order the watcher reported them, before mtime and name', () => {
    const q = new DropQueue(opts);
    q.add('/d/z', 'z', st(10, 10), 0, { seen: 1 });
    q.add('/d/w', 'w', st(10, 10), 0, { seen: 4 });
    q.add('/d/y', 'y', st(10, 10), 0, { seen: 2 });
    q.add('/d/x', 'x', st(10, 10), 0, { seen: 3 });
    expect(q.ordered().map((i) => i.name)).toEqual(['z', 'y', 'x', 'w']);
  });

  it('orders by name naturally (delta-2 before delta-10) with order: name, and by mtime with order: mtime', () => {
    const byName = new DropQueue({ ...opts, order: 'name' });
    const byMtime = new DropQueue({ ...opts, order: 'mtime' });
    for (const q of [byName, byMtime]) {
      q.add('/d/delta-10', 'delta-10', st(1, 1), 0);
      q.add('/d/delta-2', 'delta-2', st(2, 2), 0);
    }
    expect(byName.ordered().map((i) => i.name)).toEqual(['delta-2', 'delta-10']);
    expect(byMtime.ordered().map((i) => i.name)).toEqual(['delta-10', 'delta-2']);
  });

  it('puts claimed files first, in claim order', () => {
    const q = new DropQueue(opts);
    q.add('/d/new', 'new', st(1, 1), 0);
    q.add('/p/second', 'second', st(9, 9), 0, { claimSeq: 2 });
    q.add('/p/first', 'first', st(8, 8), 0, { claimSeq: 1 });
    expect(q.ordered().map((i) => i.name)).toEqual(['first', 'second', 'new']);
  });

  it('a file is ready once unchanged for stableMs (an empty one: emptyStableMs); a change restarts the clock', () => {
    const q = new DropQueue(opts);
    const a = q.add('/d/a', 'a', st(1, 1, 10), 0);
    const e = q.add('/d/e', 'e', st(2, 2, 0), 0);
    expect(q.isReady(a, 99)).toBe(false);
    q.observe(a, st(1, 2, 20), 50);
    expect(q.isReady(a, 100)).toBe(false);
    expect(q.isReady(a, 150)).toBe(true);
    expect(q.isReady(e, 999)).toBe(false);
    expect(q.isReady(e, 1_000)).toBe(true);
  });

  it('a ready file behind a head still being written waits, then overtakes it after orderTimeoutMs', () => {
    const q = new DropQueue(opts);
    const head = q.add('/d/a', 'a', st(1, 1), 0);
    q.add('/d/b', 'b', st(2, 2), 0);
    let t = 100;
    // The head keeps changing; b is stable.
    for (; t < 5_100; t += 100) {
      q.observe(head, st(1, t), t);
      expect(q.next(t)).toBeUndefined();
    }
    q.observe(head, st(1, t), t);
    expect(q.next(t)).toMatchObject({ item: { name: 'b' }, overtakes: { name: 'a' } });
  });

  it('once the head has blocked for orderTimeoutMs, every ready file behind it goes, in order, until the head is handled', () => {
    const q = new DropQueue(opts);
    const head = q.add('/d/a', 'a', st(1, 1), 0);
    for (const n of ['b', 'c', 'd']) q.add(`/d/${n}`, n, st(2, n.charCodeAt(0)), 0);
    const taken: string[] = [];
    let t = 0;
    for (; t <= 6_000; t += 100) {
      q.unsettle(head, t); // never stable
      const pick = q.next(t);
      if (!pick) continue;
      taken.push(pick.item.name);
      q.delete(pick.item.path);
      if (taken.length === 1) expect(t).toBeGreaterThanOrEqual(5_100);
    }
    expect(taken).toEqual(['b', 'c', 'd']);
    expect(q.blocked()).toBeUndefined(); // nothing left behind the head
    // The head is handled: a new file behind the next head waits afresh.
    q.delete(head.path);
    const next = q.add('/d/e', 'e', st(3, 3), t);
    q.add('/d/f', 'f', st(4, 4), t);
    q.unsettle(next, t + 1_000);
    expect(q.next(t + 500)).toBeUndefined();
    expect(q.blocked()).toMatchObject({ head: { name: 'e' }, waiting: { name: 'f' } });
  });

  it('never hands out a file before every earlier one while none is stuck (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.nat(50), fc.nat(300)), { minLength: 1, maxLength: 20 }), (files) => {
        const q = new DropQueue(opts);
        files.forEach(([ctime, mtime, readyAt], i) => {
          const item = q.add(`/d/f${i}`, `f${i}`, st(ctime, mtime), 0);
          q.unsettle(item, readyAt); // ready at readyAt + stableMs, well before orderTimeoutMs
        });
        const expected = q.ordered().map((i) => i.name);
        const taken: string[] = [];
        for (let t = 0; t < 1_000 && q.size > 0; t += 10) {
          const pick = q.next(t);
          if (!pick) continue;
          expect(pick.overtakes).toBeUndefined();
          taken.push(pick.item.name);
          q.delete(pick.item.path);
        }
        expect(taken).toEqual(expected);
      }),
    );
  });
});
