/**
 * The outbox's share of its file system (agent/outbox/disk-room.ts): the arithmetic of the floor,
 * on a file system whose free space the test sets, with real files for the database and its WAL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { appendFootprint, DiskRoom, type DbPages } from '../../../agent/outbox/disk-room.js';
import { makeTempDir } from '../../helpers/tmp.js';

const MiB = 1024 ** 2;
const PAGE = 4096;

const tmp: { cleanup: () => void }[] = [];
afterEach(() => {
  while (tmp.length) tmp.pop()!.cleanup();
});

/** A DiskRoom over a database file of `dbPages` pages and a WAL of `walBytes`, on a file system with `free` bytes. */
function room(o: { free: number; dbPages: number; walBytes: number; pageCount?: number; freelist?: number; minFree?: number; reserve?: number }) {
  const t = makeTempDir('disk-room-');
  tmp.push(t);
  const path = join(t.dir, 'outbox.db');
  writeFileSync(path, Buffer.alloc(o.dbPages * PAGE));
  if (o.walBytes > 0) writeFileSync(`${path}-wal`, Buffer.alloc(o.walBytes));
  const fs = { free: o.free };
  const pages: DbPages = { pageSize: PAGE, pageCount: o.pageCount ?? o.dbPages, freelistCount: o.freelist ?? 0, walAutocheckpoint: 1000 };
  const disk = new DiskRoom({ path, minFreeBytes: o.minFree ?? MiB, reserveBytes: o.reserve ?? 0, pages: () => pages, fsFree: () => fs.free });
  return { disk, fs, pages, path };
}

/** Room kept for a WAL of `walBytes` to grow to its checkpoint size (1000 pages) plus the slack. */
const walGrowth = (walBytes: number) => Math.max(0, 1000 * PAGE + MiB - walBytes);

describe('DiskRoom', () => {
  it('keeps disk_min_free plus the WAL’s growth to its checkpoint size free: an append that would cross that waits', () => {
    const { disk, fs } = room({ free: 0, dbPages: 10, walBytes: 0 });
    const floor = MiB + walGrowth(0);
    fs.free = floor + appendFootprint(100_000);
    expect(disk.roomFor(100_000)).toBe(true);
    disk.forget();
    fs.free -= 1;
    expect(disk.roomFor(100_000)).toBe(false);
    expect(disk.measure(100_000).spare).toBe(-1);
  });

  it('counts WAL pages past the end of the database file as a checkpoint debt (the file grows when they move in)', () => {
    // 50 pages in the database's view, 10 in the file: a checkpoint grows the file by 40 pages.
    const { disk, fs } = room({ free: 0, dbPages: 10, pageCount: 50, walBytes: 4 * MiB });
    fs.free = 10 * MiB;
    const m = disk.measure(0);
    expect(m.checkpointDebt).toBe(40 * PAGE);
    expect(m.walGrowth).toBe(walGrowth(4 * MiB));
    expect(m.spare).toBe(10 * MiB - 40 * PAGE - walGrowth(4 * MiB) - MiB);
  });

  it('pages freed inside the database take appends without the file system giving back a byte', () => {
    const { disk, fs, pages } = room({ free: 0, dbPages: 1000, walBytes: 4 * MiB });
    fs.free = MiB + walGrowth(4 * MiB); // exactly at the floor
    expect(disk.roomFor(200_000)).toBe(false);
    // Pruning freed 200 pages inside the file: the same append fits, the file system unchanged.
    pages.freelistCount = 200;
    expect(disk.roomFor(200_000)).toBe(true);
  });

  it('between measurements counts appends down, and measures again once the counted spare runs out', () => {
    const { disk, fs } = room({ free: 0, dbPages: 10, walBytes: 0 });
    const floor = MiB + walGrowth(0);
    fs.free = floor + 3 * appendFootprint(10_000);
    expect(disk.roomFor(10_000)).toBe(true); // measured: room for this and two more
    fs.free = 0; // taken by someone else since: the count does not know yet
    expect(disk.roomFor(10_000)).toBe(true);
    expect(disk.roomFor(10_000)).toBe(true);
    expect(disk.roomFor(10_000)).toBe(false); // counted out: measured, and the file system is full
  });

  it('after the reserve was given up, appends resume only with room to make it again beside the floor', () => {
    const { disk, fs } = room({ free: 0, dbPages: 10, walBytes: 0, reserve: 2 * MiB });
    fs.free = 100 * MiB;
    expect(disk.makeReserve()).toBe(true);
    expect(disk.hasReserve()).toBe(true);
    expect(disk.releaseReserve()).toBe(true);
    expect(existsSync(disk.reservePath)).toBe(false);
    fs.free = MiB + walGrowth(0) + appendFootprint(1000) + 2 * MiB - 1;
    expect(disk.roomFor(1000, true)).toBe(false);
    expect(disk.describe(disk.measure(1000))).toMatch(/this one needed 0\.0 MiB and 2\.0 MiB to make the reserve again$/);
    fs.free += 1;
    expect(disk.roomFor(1000, true)).toBe(true);
    expect(disk.releaseReserve()).toBe(false); // none to give
  });

  it('says why appends wait, in MiB', () => {
    const { disk, fs } = room({ free: 0, dbPages: 10, walBytes: 4 * MiB, minFree: 2 * MiB });
    fs.free = 3 * MiB;
    // 4 MiB of WAL: 1000 pages and the slack less what it has are still to be kept for it.
    const wal = walGrowth(4 * MiB) / MiB;
    expect(disk.describe()).toBe(`3.0 MiB free on the file system; appends leave ${(2 + wal).toFixed(1)} MiB free (outbox.disk_min_free 2.0 MiB + ${wal.toFixed(1)} MiB kept for the write-ahead log), this one needed 0.0 MiB`);
  });
});
