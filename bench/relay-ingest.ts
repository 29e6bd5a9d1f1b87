/**
 * Relay ingest cost without MQTT: `npx tsx bench/relay-ingest.ts [--records 100000] [--batch 1000] [--group 4] [--runs 5]`
 *
 * Feeds event batch payloads (the bench's ~170-byte synthetic records, as the agent sends them)
 * through the relay's decode + store path (JSON.parse, zod, segment encoding, SQLite with
 * synchronous=FULL, `group` batches per transaction as the group commit sees them) and prints
 * the cost per 100k records. Every run starts from a fresh relay.db in a temp folder.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { eventBatch, type EventBatch } from '../common/wire-v1.js';
import { createLogger } from '../common/logger.js';
import { RelayStore } from '../cloud-relay/store.js';
import { sampleRecord } from './lib/payload.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    group: { type: 'string', default: '4' },
    runs: { type: 'string', default: '5' },
  },
});
const N = Number(values.records);
const BATCH = Number(values.batch);
const GROUP = Number(values.group);
const RUNS = Number(values.runs);
const log = createLogger({ level: 'silent' });

function payloads(epoch: string): Buffer[] {
  const out: Buffer[] = [];
  for (let first = 1; first <= N; first += BATCH) {
    const recs: string[] = [];
    for (let s = first; s < first + BATCH && s <= N; s++) recs.push(sampleRecord(s));
    out.push(Buffer.from(`{"v":1,"site":"s1","agent":"a1","stream":"load","epoch":"${epoch}","sent_at":${Date.now()},"records":[${recs.join(',')}]}`));
  }
  return out;
}

function decode(p: Buffer): EventBatch {
  const r = eventBatch.safeParse(JSON.parse(p.toString('utf8')));
  if (!r.success) throw new Error('invalid');
  return r.data;
}

const results: { decode: number; store: number; total: number }[] = [];
for (let run = 0; run < RUNS; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'relay-ingest-'));
  const store = new RelayStore(join(dir, 'relay.db'), log, 'FULL');
  const msgs = payloads(`epoch-${run}-xxxxxxxx`);
  let tDecode = 0;
  let tStore = 0;
  for (let i = 0; i < msgs.length; i += GROUP) {
    const t0 = process.hrtime.bigint();
    const group = msgs.slice(i, i + GROUP).map(decode);
    const t1 = process.hrtime.bigint();
    const res = store.applyBatches(group);
    const t2 = process.hrtime.bigint();
    if (res.some((r) => r.status !== 'ok')) throw new Error('not ok');
    tDecode += Number(t1 - t0) / 1e6;
    tStore += Number(t2 - t1) / 1e6;
  }
  store.close();
  rmSync(dir, { recursive: true, force: true });
  const per = 100_000 / N;
  results.push({ decode: tDecode * per, store: tStore * per, total: (tDecode + tStore) * per });
}
const med = (k: 'decode' | 'store' | 'total') => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
console.log(
  `relay ingest, ${N} records in batches of ${BATCH}, ${GROUP} batches per commit, ${RUNS} runs (median ms per 100k records):` +
    ` decode ${med('decode').toFixed(0)}, store ${med('store').toFixed(0)}, total ${med('total').toFixed(0)}` +
    ` → ${(100_000 / (med('total') / 1000)).toFixed(0)} records/s`,
);
