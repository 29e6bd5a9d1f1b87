/**
 * Relay ingest cost without MQTT:
 *   npx tsx bench/relay-ingest.ts [--records 100000] [--batch 1000] [--group 4] [--runs 5]
 *                                 [--wire 1|2] [--dedupe 7d|0] [--ids seq|random] [--preload 0]
 *
 * Feeds event batch payloads (the bench's ~170-byte synthetic records, as an agent sends them)
 * through the relay's ingest path minus MQTT: decode (JSON.parse, zod, record encoding) and apply
 * (order, de-duplicate by id, segment insert) in SQLite with synchronous=FULL, `group` batches per
 * transaction as the group commit sees them. Prints the median cost per 100k records. Each run
 * starts from a fresh relay.db in a temp folder; `--preload N` first stores N records of another
 * epoch (other ids) so the id index is not empty; `--ids random` uses random (UUID) record ids,
 * the worst case for the id index.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { parseDuration } from '../common/duration.js';
import { SqliteRelayStore } from '../cloud-relay/store/sqlite-store.js';
import { decodeEventBatch, type DecodedBatch } from '../cloud-relay/ingest/decode.js';
import { applyBatches } from '../cloud-relay/ingest/apply.js';
import { sampleRecord } from './lib/payload.js';

const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '100000' },
    batch: { type: 'string', default: '1000' },
    group: { type: 'string', default: '4' },
    runs: { type: 'string', default: '5' },
    wire: { type: 'string', default: '2' },
    dedupe: { type: 'string', default: '7d' },
    ids: { type: 'string', default: 'seq' },
    preload: { type: 'string', default: '0' },
  },
});
const N = Number(values.records);
const BATCH = Number(values.batch);
const GROUP = Number(values.group);
const RUNS = Number(values.runs);
const WIRE = Number(values.wire) as 1 | 2;
const WINDOW = parseDuration(values.dedupe)!;
const RANDOM_IDS = values.ids === 'random';
const PRELOAD = Number(values.preload);
const log = createLogger({ level: 'silent' });

function record(seq: number, idPrefix: string): string {
  const r = JSON.parse(sampleRecord(seq)) as { id: string };
  r.id = RANDOM_IDS ? randomUUID() : `${idPrefix}${seq}`;
  return JSON.stringify(r);
}

function payloads(epoch: string, count: number, idPrefix: string): Buffer[] {
  const out: Buffer[] = [];
  for (let first = 1; first <= count; first += BATCH) {
    const recs: string[] = [];
    for (let s = first; s < first + BATCH && s <= count; s++) recs.push(record(s, idPrefix));
    out.push(Buffer.from(`{"v":${WIRE},"site":"s1","agent":"a1","stream":"load","epoch":"${epoch}","sent_at":${Date.now()},"records":[${recs.join(',')}]}`));
  }
  return out;
}

function decode(p: Buffer): DecodedBatch {
  const r = decodeEventBatch({ version: WIRE, site: 's1', agent: 'a1', stream: 'load' }, p, { maxRecordBytes: 1024 * 1024 });
  if (!r.ok) throw new Error(`invalid: ${r.detail}`);
  return r.batch;
}

async function feed(store: SqliteRelayStore, msgs: Buffer[]): Promise<{ decode: number; store: number }> {
  let tDecode = 0;
  let tStore = 0;
  for (let i = 0; i < msgs.length; i += GROUP) {
    const t0 = process.hrtime.bigint();
    const group = msgs.slice(i, i + GROUP).map(decode);
    const t1 = process.hrtime.bigint();
    const res = await applyBatches(store, group);
    const t2 = process.hrtime.bigint();
    if (res.some((r) => r.status !== 'ok' || r.duplicateIds > 0)) throw new Error(`not ok: ${JSON.stringify(res.find((r) => r.status !== 'ok' || r.duplicateIds > 0))}`);
    tDecode += Number(t1 - t0) / 1e6;
    tStore += Number(t2 - t1) / 1e6;
  }
  return { decode: tDecode, store: tStore };
}

const results: { decode: number; store: number; total: number }[] = [];
for (let run = 0; run < RUNS; run++) {
  const dir = mkdtempSync(join(tmpdir(), 'relay-ingest-'));
  const store = new SqliteRelayStore({ path: join(dir, 'relay.db'), synchronous: 'FULL', dedupeWindowMs: WINDOW, log });
  if (PRELOAD > 0) await feed(store, payloads(`preload-${run}-xxxxxxxx`, PRELOAD, 'preload:'));
  const t = await feed(store, payloads(`epoch-${run}-xxxxxxxx`, N, 'load:'));
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  const per = 100_000 / N;
  results.push({ decode: t.decode * per, store: t.store * per, total: (t.decode + t.store) * per });
}
const med = (k: 'decode' | 'store' | 'total') => results.map((r) => r[k]).sort((a, b) => a - b)[Math.floor(results.length / 2)]!;
console.log(
  `relay ingest v${WIRE}, ids ${RANDOM_IDS ? 'random' : 'seq'}, dedupe ${values.dedupe}, preload ${PRELOAD}, ${N} records in batches of ${BATCH}, ${GROUP} batches per commit, ${RUNS} runs` +
    ` (median ms per 100k records): decode ${med('decode').toFixed(0)}, apply+store ${med('store').toFixed(0)}, total ${med('total').toFixed(0)}` +
    ` → ${(100_000 / (med('total') / 1000)).toFixed(0)} records/s`,
);
