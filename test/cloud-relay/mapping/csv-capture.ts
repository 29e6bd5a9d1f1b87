import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { create } from '../../../agent/collectors/file-drop/file-drop.js';
import { fileDropSchema } from '../../../agent/collectors/file-drop/schema.js';
import { Outbox } from '../../../agent/outbox/outbox.js';
import type { WireRecord } from '../../../common/wire-v1.js';
import { testHost } from '../../helpers/host.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { makeTempDir } from '../../helpers/tmp.js';

/**
 * Records exactly as the agent captures them from a dropped CSV file: a real file-drop collector
 * (its CSV reader, row identity and capture writer) on a temp folder, writing to a real outbox,
 * read back as their wire JSON. Waits on the outbox's 'appended' event, not on time.
 */
export async function captureCsv(csv: string | Buffer, fileName = 'orders.csv', extra: Record<string, unknown> = {}): Promise<WireRecord[]> {
  const tmp = makeTempDir('mapping-csv-');
  const outbox = new Outbox(testOutboxOptions(path.join(tmp.dir, 'outbox.db'), { synchronous: 'NORMAL' }));
  const cfg = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', stable_time: '50ms', ...extra });
  fs.mkdirSync(path.join(tmp.dir, 'drop'));
  const collector = create(cfg, testHost(outbox, cfg, tmp.dir).ctx);
  try {
    await collector.start();
    const rows = String(csv).trimEnd().split('\n').length - 1;
    const appended = once(outbox, 'appended'); // subscribed before the file exists
    fs.writeFileSync(path.join(tmp.dir, 'drop', fileName), csv);
    await appended;
    while (outbox.lastSeq('orders') < rows) await once(outbox, 'appended');
    return outbox.readPending('orders', 0, 100_000).map((r) => JSON.parse(r.payload) as WireRecord);
  } finally {
    await collector.stop();
    outbox.close();
    tmp.cleanup();
  }
}
