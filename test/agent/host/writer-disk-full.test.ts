/**
 * The capture writer over an outbox on a small real file system (a tmpfs the test mounts; root
 * needed, under CI=true a failure to mount fails the run): at the disk's floor an append waits,
 * as under `block`, and goes in once acks let pruning free pages; `whenFull: 'refuse'` says so at
 * once. Nothing reaches the collector as an error, nothing is lost.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { CaptureWriter, type CaptureInput } from '../../../agent/host/writer.js';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { createLogger } from '../../../common/logger.js';
import { isErpEdgeError } from '../../../common/errors.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { mountSmallFs } from '../../helpers/small-fs.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { withFile } from '../../helpers/outbox-file.js';

const MiB = 1024 ** 2;
const root = makeTempDir('writer-disk-full-');
const mnt = join(root.dir, 'small');
const small = mountSmallFs(mnt, 10 * MiB);
afterAll(() => {
  small?.unmount();
  root.cleanup();
});

const path = join(mnt, 'outbox.db');
let outbox: Outbox | undefined;
afterEach(() => {
  outbox?.close();
  outbox = undefined;
  for (const f of [path, `${path}-wal`, `${path}-shm`, `${path}-reserve`]) rmSync(f, { force: true });
});

let n = 0;
function batch(size = 250): CaptureInput[] {
  return Array.from({ length: size }, () => ({ id: `r${++n}`, data: { n, note: 'x'.repeat(150) } }));
}

function setUp() {
  outbox = new Outbox(testOutboxOptions(path, { diskMinFreeBytes: 512 * 1024, diskReserveBytes: MiB }));
  const writer = new CaptureWriter({ outbox, source: 'test:orders', stream: 'orders', maxRecordBytes: 64 * 1024, logger: createLogger({ level: 'silent' }) });
  return { o: outbox, writer };
}

/** Appends through the writer until one waits for the disk (the outbox says 'full'); returns that append (wrapped: not awaited). */
async function appendUntilWaiting(o: Outbox, writer: CaptureWriter): Promise<{ waiting: ReturnType<CaptureWriter['append']> }> {
  for (;;) {
    const full = once(o, 'full');
    const p = writer.append(batch(), { key: 'pos', value: n });
    const first = await Promise.race([p.then(() => 'appended' as const), full.then(() => 'full' as const)]);
    if (first === 'full') return { waiting: p };
  }
}

describe.skipIf(!small)('capture writer on a full disk (a 10 MiB tmpfs)', () => {
  it('an append at the floor waits (no error to the collector) and goes in with its checkpoint once acks free pages; counted as a wait', async () => {
    const { o, writer } = setUp();
    const { waiting } = await appendUntilWaiting(o, writer);
    expect(o.diskFullState()).not.toBeNull();
    const before = o.lastSeq('orders');
    // The relay acks what it has: pruned at once, pages freed, the waiting append goes in.
    o.ack('orders', before);
    const r = await waiting;
    expect(r.appended).toBe(250);
    expect(r.firstSeq).toBe(before + 1);
    expect(r.waitedMs).toBeGreaterThanOrEqual(0);
    expect(o.getCheckpoint('test:orders', 'pos')).toBe(n);
    expect(o.diskFullState()).toBeNull();
    expect(writer.stats().waits).toBe(1);
    // And capture goes on from there.
    await writer.append(batch());
    expect(o.lastSeq('orders')).toBe(before + 500);
  });

  it('an append whose records all go to the dead-letter table waits at the floor too (no error to the collector), and goes in once acks free pages', async () => {
    const { o, writer } = setUp();
    const { waiting } = await appendUntilWaiting(o, writer);
    const last = o.lastSeq('orders');
    // One record over max_record_bytes (64 KiB here), dead-lettered whole: 100 KiB to store, no seq.
    const tooBig = writer.append([{ id: 'big', data: { note: 'x'.repeat(100 * 1024) } }], { key: 'big', value: 1 }, { invalid: 'dead_letter' });
    const outcome = tooBig.then((r) => r, (err: unknown) => err);
    o.ack('orders', last);
    await waiting;
    const r = await outcome;
    expect(r).not.toBeInstanceOf(Error);
    expect(r).toMatchObject({ appended: 0, deadLettered: 1 });
    expect(o.getCheckpoint('test:orders', 'big')).toBe(1);
    expect(withFile(path, (db) => (db.prepare("SELECT count(*) AS n FROM dead_letters WHERE record_id = 'big'").get() as { n: number }).n)).toBe(1);
  });

  it("whenFull: 'refuse' refuses at the floor at once with ERP_OUTBOX_FULL, writes nothing and counts it", async () => {
    const { o, writer } = setUp();
    const { waiting } = await appendUntilWaiting(o, writer);
    const last = o.lastSeq('orders');
    const err = await writer.append(batch(), { key: 'pos', value: -1 }, { whenFull: 'refuse' }).catch((e: unknown) => e);
    expect(isErpEdgeError(err, 'ERP_OUTBOX_FULL')).toBe(true);
    expect((err as Error).message).toMatch(/disk is full/);
    expect(writer.stats().full_refusals).toBe(1);
    expect(o.getCheckpoint('test:orders', 'pos')).not.toBe(-1);
    o.ack('orders', last);
    await waiting;
    expect(o.lastSeq('orders')).toBe(last + 250);
  });
});
