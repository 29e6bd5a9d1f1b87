/**
 * The outbox on a small real file system (a tmpfs the test mounts; root needed, under CI=true a
 * failure to mount fails the run): appends stop at the floor before SQLite runs out of room, acks
 * and pruning always go through, appends resume into the pages pruning frees — cycle after cycle —
 * and when another program takes the rest of the disk, the reserve carries the acks.
 */
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { existsSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Outbox, type NewRecord } from '../../../agent/outbox/outbox.js';
import { walSizeLimit } from '../../../agent/outbox/disk-room.js';
import { isErpEdgeError } from '../../../common/errors.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { mountSmallFs } from '../../helpers/small-fs.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
// Its own connection to the file (through the storage seam once there is one: not better-sqlite3 directly).
import { withFile } from '../../helpers/outbox-file.js';

const MiB = 1024 ** 2;
const root = makeTempDir('outbox-disk-full-');
const mnt = join(root.dir, 'small');
const small = mountSmallFs(mnt, 10 * MiB);
afterAll(() => {
  small?.unmount();
  root.cleanup();
});

const path = join(mnt, 'outbox.db');
const filler = join(mnt, 'filler');
let outbox: Outbox | undefined;
afterEach(() => {
  outbox?.close();
  outbox = undefined;
  for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-reserve`, filler]) rmSync(f, { force: true });
});

function open(): Outbox {
  outbox = new Outbox(testOutboxOptions(path, { diskMinFreeBytes: 512 * 1024, diskReserveBytes: MiB }));
  return outbox;
}

let n = 0;
function batch(size = 250): NewRecord[] {
  return Array.from({ length: size }, () => ({ id: `r${++n}`, source: 'test:disk', data: { n, note: 'x'.repeat(150) } }));
}

/** Appends batches until the outbox refuses one for the disk; returns how many went in and the refusal. */
function fillUp(o: Outbox): { appended: number; refusal: Error } {
  for (let appended = 0; appended < 10_000; appended++) {
    try {
      o.append('orders', batch());
    } catch (err) {
      if (!isErpEdgeError(err, 'ERP_OUTBOX_DISK_FULL')) throw err;
      return { appended, refusal: err };
    }
  }
  throw new Error('the disk never filled');
}

/** Takes every byte left on the file system, as another program writing there would. */
function fillDisk(): void {
  try {
    writeFileSync(filler, Buffer.alloc(64 * MiB));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

function integrity(): string {
  return withFile(path, (db) => db.pragma('integrity_check', { simple: true }) as string);
}

describe.skipIf(!small)('outbox on a full disk (a 10 MiB tmpfs)', () => {
  it('stops appends at the floor before SQLite runs out of room, and resumes into pruned pages cycle after cycle', () => {
    const o = open();
    const per: number[] = [];
    for (let cycle = 0; cycle < 4; cycle++) {
      const before = o.lastSeq('orders');
      const { appended, refusal } = fillUp(o);
      per.push(appended);
      // The floor refused it, not SQLite: nothing half-written, no SQLITE_FULL anywhere.
      expect(refusal.message).toMatch(/too full to append: nothing was written \(.* MiB free on the file system; appends leave .* MiB free \(outbox\.disk_min_free 0\.5 MiB \+ .* MiB kept for the write-ahead log\), this one needed 0\.1 MiB\)$/);
      expect(o.diskFullState()).not.toBeNull();
      expect(o.isFull()).toBe(true);
      const last = o.lastSeq('orders');
      expect(last).toBe(before + appended * 250); // the refused batch got no seqs
      // Checkpoints alone are small writes like acks: they go in the room the floor keeps.
      o.setCheckpoint({ collector: 'test:disk', key: 'cycle', value: cycle });
      o.append('orders', [], { collector: 'test:disk', key: 'pos', value: last });
      expect(o.getCheckpoint('test:disk', 'pos')).toBe(last);
      // The relay acks everything: recorded, and (the disk being full) pruned at once.
      let freed = 0;
      o.on('freed', () => freed++);
      expect(o.ack('orders', last)).toBeGreaterThan(0);
      expect(freed).toBeGreaterThan(0);
      expect(o.usage().events).toBe(0);
      o.removeAllListeners('freed');
      // The file system got no byte back, yet the next append goes in: into the freed pages.
      o.append('orders', batch());
      expect(o.diskFullState()).toBeNull();
      expect(o.isFull()).toBe(false);
    }
    // Every cycle holds about as much as the first: no room is lost from one to the next.
    for (const a of per.slice(1)) expect(a).toBeGreaterThanOrEqual(per[0]! * 0.8);
    o.close();
    expect(integrity()).toBe('ok');
  });

  it('when another program takes the rest of the disk, acks and pruning still go through (the reserve is given up if they need it), and appends resume with the reserve made again once space returns', () => {
    const o = open();
    fillUp(o);
    fillDisk();
    // A reader holding a snapshot (`edge-agent status` reading the file) keeps the WAL from starting
    // over: every ack must grow the WAL file, on a file system with no byte free.
    const last = o.lastSeq('orders');
    let upto = 0;
    withFile(path, (reader) => {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM chunks').get();
      // Acks one after another until one needed the reserve, and a few more in its room.
      for (let extra = 0; upto < last && extra < 5; ) {
        o.ack('orders', (upto += 10));
        if (!existsSync(`${path}-reserve`)) extra++;
      }
    });
    expect(existsSync(`${path}-reserve`)).toBe(false);
    expect(o.ackedSeq('orders')).toBe(upto);
    // The reader gone, the WAL starts over inside the space it has: the last ack and the prune fit.
    o.ack('orders', last);
    expect(o.ackedSeq('orders')).toBe(last);
    o.pruneAcked(true);
    expect(o.usage().events).toBe(0);
    // Still no room for the reserve beside the floor: appends wait.
    expect(() => o.append('orders', batch())).toThrow(/ERP_OUTBOX_DISK_FULL|too full to append/);
    rmSync(filler);
    o.append('orders', batch());
    expect(o.diskFullState()).toBeNull();
    expect(existsSync(`${path}-reserve`)).toBe(true);
    o.close();
    expect(integrity()).toBe('ok');
  });

  it('an ack the disk cannot take even with the reserve given up fails as ERP_OUTBOX_DISK_FULL (a typed error, the acks before it stand), and goes through once there is room', () => {
    const o = open();
    fillUp(o);
    fillDisk();
    const last = o.lastSeq('orders');
    let upto = 0;
    let failure: unknown;
    // A reader pins the WAL, so every ack grows it: once the reserve's room is used up too, one fails.
    withFile(path, (reader) => {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM chunks').get();
      try {
        for (; upto < last; upto++) o.ack('orders', upto + 1);
      } catch (err) {
        failure = err;
      }
    });
    expect(upto).toBeLessThan(last);
    expect(existsSync(`${path}-reserve`)).toBe(false);
    expect((failure as { code?: string }).code).toBe('ERP_OUTBOX_DISK_FULL');
    expect((failure as Error).message).toMatch(/is full: the ack up to \d+ of orders was not recorded/);
    expect(o.ackedSeq('orders')).toBe(upto);
    rmSync(filler);
    o.ack('orders', last);
    expect(o.ackedSeq('orders')).toBe(last);
    o.close();
    expect(integrity()).toBe('ok');
  });

  it('reopened at the floor (the agent restarted): the reserve is made again, appends wait, and resume once acks free pages', () => {
    let o = open();
    fillUp(o);
    const last = o.lastSeq('orders');
    o.close();
    expect(existsSync(`${path}-reserve`)).toBe(false); // the outbox's own: it went with it
    o = open();
    expect(existsSync(`${path}-reserve`)).toBe(true);
    expect(() => o.append('orders', batch())).toThrow(/too full to append/);
    expect(o.diskFullState()).not.toBeNull();
    o.ack('orders', last);
    o.append('orders', batch());
    expect(o.lastSeq('orders')).toBe(last + 250);
    expect(o.diskFullState()).toBeNull();
  });

  it('a WAL that grew past its usual size while a reader held it is cut back when it starts over (journal_size_limit): the disk gets that room back', () => {
    // On the roomy temp folder: the WAL has to grow past 5 MiB.
    const big = join(root.dir, 'big.db');
    const o = new Outbox(testOutboxOptions(big, { synchronous: 'NORMAL' }));
    withFile(big, (reader) => {
      reader.prepare('BEGIN').run();
      reader.prepare('SELECT count(*) FROM chunks').get();
      while (statSync(`${big}-wal`).size <= walSizeLimit(4096, 1000)) o.append('orders', batch(1000));
    });
    o.append('orders', batch(10)); // commits; the checkpoint after it completes
    o.append('orders', batch(10)); // starts the WAL over, cut back to the limit
    expect(statSync(`${big}-wal`).size).toBeLessThanOrEqual(walSizeLimit(4096, 1000));
    o.close();
  });

  it('counts a dead letter stored with an append at its UTF-8 size against the floor, not its length in characters', () => {
    const o = open();
    const dead = (chars: number) => ({
      stream: 'orders',
      origin: 'capture' as const,
      reason: 'record too big',
      payload: JSON.stringify({ id: `dl${chars}`, source: 'test:disk', data: { note: '€'.repeat(chars) } }), // 3 bytes a character
    });
    const count = () => withFile(path, (db) => (db.prepare('SELECT count(*) AS n FROM dead_letters').get() as { n: number }).n);
    // About 0.9 MB: room for it on the 10 MiB file system, beside the floor, the WAL's room and the reserve.
    o.append('orders', [], [], { deadLetters: [dead(300_000)] });
    expect(count()).toBe(1);
    // 3.6 MB (1.2 M characters): past what is left above the floor, so it waits like any append.
    expect(() => o.append('orders', [], [], { deadLetters: [dead(1_200_000)] })).toThrow(/too full to append/);
    expect(count()).toBe(1);
    o.close();
    expect(integrity()).toBe('ok');
  });

  it('SQLITE_FULL on an append (the disk filled between two looks) writes nothing and counts as disk full until there is room again', () => {
    const o = open();
    // The clock stands still until the refused append: the outbox then counts down from its last
    // look (it measures again only after a second), however long a loaded machine takes in between.
    vi.useFakeTimers({ toFake: ['Date'] });
    let before: { last: number; usage: ReturnType<Outbox['usage']> };
    try {
      o.append('orders', batch(10)); // measured: plenty of room
      fillDisk();
      // Counted down from that look, this append reaches SQLite,
      // whose WAL must grow for it on a file system with no byte free.
      before = { last: o.lastSeq('orders'), usage: o.usage() };
      expect(() => o.append('orders', batch(4_000))).toThrow(/is full: nothing was written \(database or disk is full\)/);
    } finally {
      vi.useRealTimers();
    }
    expect(o.lastSeq('orders')).toBe(before.last);
    expect(o.usage().events).toBe(before.usage.events);
    expect(o.diskFullState()?.message).toMatch(/database or disk is full/);
    rmSync(filler);
    o.append('orders', batch());
    expect(o.diskFullState()).toBeNull();
    expect(o.lastSeq('orders')).toBe(before.last + 250);
    o.close();
    expect(integrity()).toBe('ok');
  });
});
