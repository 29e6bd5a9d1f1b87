// One outbox workload, run in a process of its own by bench/scenarios/outbox-binding.ts with the
// SQLite binding it measures (ERP_EDGE_SQLITE) and the Node that binding runs on:
//   node --import tsx bench/lib/outbox-workload.ts FILE EVENTS BATCH
// Appends EVENTS records in transactions of BATCH with a checkpoint each (as the capture writer
// does; FULL sync, the default), then reads them back in pages of 1 000 and acks each page (as
// the forwarder does). Prints one JSON line with the timings.
import { defaultOutboxConfig, outboxOptions } from '../../agent/config.js';
import { Outbox, type NewRecord } from '../../agent/outbox/outbox.js';
import { sqliteBinding } from '../../agent/outbox/sqlite.js';

const [path, eventsArg, batchArg] = process.argv.slice(2);
const events = Number(eventsArg);
const batch = Number(batchArg);
if (!path || !(events > 0) || !(batch > 0)) throw new Error('usage: outbox-workload.ts FILE EVENTS BATCH');

const outbox = new Outbox(outboxOptions(path, defaultOutboxConfig()));
const stream = 'bench:orders';
const t0 = performance.now();
for (let i = 0; i < events; i += batch) {
  const records: NewRecord[] = [];
  for (let k = i; k < Math.min(events, i + batch); k++) {
    records.push({ id: `r-${k}`, source: 'bench:csv', ts: 1_700_000_000_000 + k, key: `ORD-${k % 5000}`, data: { order: `ORD-${k % 5000}`, line: k, sku: `SKU-${k % 997}`, qty: k % 17, price: 12.5 } });
  }
  outbox.append(stream, records, { collector: 'bench', key: 'offset', value: i + records.length });
}
const appended = performance.now();
let after = 0;
for (;;) {
  const rows = outbox.readPending(stream, after, 1_000);
  if (rows.length === 0) break;
  after = rows[rows.length - 1]!.seq;
  outbox.ack(stream, after);
}
const drained = performance.now();
if (after !== events) throw new Error(`read back ${after} of ${events} events`);
outbox.close();
process.stdout.write(
  `${JSON.stringify({ binding: sqliteBinding(), node: process.version, events, append_s: (appended - t0) / 1000, drain_s: (drained - appended) / 1000 })}\n`,
);
