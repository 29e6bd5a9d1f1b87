import { applyBatches } from '../../../cloud-relay/ingest/apply.js';
import { decodeEventBatch } from '../../../cloud-relay/ingest/decode.js';
import type { RelayStore } from '../../../cloud-relay/store/store.js';
import { batchV2, type BatchOpts } from '../../helpers/relay-wire.js';
import type { SkippedRange } from '../../../common/wire-v2.js';

/** Stores seqs from..to of a stream through ingest's own path (decode, apply), as a relay would. */
export async function storeBatch(store: RelayStore, from: number, to: number, o: BatchOpts & { skipped?: SkippedRange[] } = {}): Promise<void> {
  const b = batchV2(from, to, o);
  const r = decodeEventBatch({ version: 2, site: b.site, agent: b.agent, stream: b.stream }, Buffer.from(JSON.stringify(b)), { maxRecordBytes: 1 << 20 });
  if (!r.ok) throw new Error(r.detail);
  const [out] = await applyBatches(store, [r.batch]);
  if (out?.status !== 'ok') throw new Error(`batch ${from}..${to} not stored: ${JSON.stringify(out)}`);
}

/** The stream epoch's row id (the delivery cursor's key). */
export async function streamId(store: RelayStore, stream: string): Promise<number> {
  const p = await store.delivery.pendingStreams('(probe)', 10_000);
  const row = p.find((s) => s.stream === stream);
  if (!row) throw new Error(`no stored stream ${stream}`);
  return row.id;
}
