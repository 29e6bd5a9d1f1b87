import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { applyBatches } from '../../../cloud-relay/ingest/apply.js';
import { decodeEventBatch, type DecodedBatch } from '../../../cloud-relay/ingest/decode.js';
import type { AgentRecord, AlertRecord, RelayStore } from '../../../cloud-relay/store/store.js';
import { createLogger } from '../../../common/logger.js';
import { AGENT, EPOCH_A, SITE, batchV2, range } from '../../helpers/relay-wire.js';
import { postgresStoreFactory, storeFactories } from '../../helpers/relay-stores.js';

const silent = createLogger({ level: 'silent' });
const factories = storeFactories();
afterAll(async () => {
  for (const f of factories) await f.dispose();
});

const sample = (at: number) => ({ at, pending: at, oldest_pending_age_ms: null, capture_rate: 1.5, forward_rate: null, collectors_in_error: 0, rss: null });

function decoded(b: ReturnType<typeof batchV2>): DecodedBatch {
  const r = decodeEventBatch({ version: 2, site: b.site, agent: b.agent, stream: b.stream }, Buffer.from(JSON.stringify(b)), { maxRecordBytes: 1 << 20 });
  if (!r.ok) throw new Error(r.detail);
  return r.batch;
}

describe.each(factories)('relay store (fleet registry, history, alerts, watermark) on the $name store', (factory) => {
  let place: string;
  const open: RelayStore[] = [];
  const openStore = async () => {
    const s = await factory.open(place, { dedupeWindowMs: 0, log: silent });
    open.push(s);
    return s;
  };
  beforeEach(async () => {
    place = await factory.place();
  });
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close().catch(() => undefined);
  });

  it('trims each agent’s history to its last `keep` rows on write and loads the last `keep` per agent, oldest first', async () => {
    let store = await openStore();
    await store.saveHistory([1, 2, 3, 4].map((at) => ({ site: 's', agent: 'a', sample: sample(at) })), 10);
    await store.saveHistory([{ site: 's', agent: 'b', sample: sample(100) }], 10);
    await store.saveHistory([5, 6].map((at) => ({ site: 's', agent: 'a', sample: sample(at) })), 3);
    await store.close();
    store = await openStore();
    expect((await store.loadHistory(10)).map((r) => `${r.agent}:${r.sample.at}`)).toEqual(['a:4', 'a:5', 'a:6', 'b:100']);
    // A smaller keep (the config lowered) loads only the newest.
    expect((await store.loadHistory(1)).map((r) => `${r.agent}:${r.sample.at}`)).toEqual(['a:6', 'b:100']);
    expect((await store.loadHistory(1))[0]!.sample).toEqual(sample(6));
  });

  it('saves and loads the fleet registry, updating rows in place', async () => {
    const store = await openStore();
    const a: AgentRecord = { site: 's', agent: 'a', online: true, boot: 'b1', birth: { v: 2, boot: 'b1', n: [1, 2] }, presence_at: 10, last_seen: 20, health: null, health_at: null, stale_wills: 0 };
    const b: AgentRecord = { site: 's', agent: 'b', online: null, boot: null, birth: null, presence_at: null, last_seen: 5, health: { free: 3 }, health_at: 5, stale_wills: 2 };
    await store.saveAgents([a, b]);
    await store.saveAgents([{ ...a, online: false, last_seen: 30 }]);
    expect(await store.loadAgents()).toEqual([{ ...a, online: false, last_seen: 30 }, b]);
  });

  it('keeps alerts from firing to resolution, with their delivery marks, and drops resolved ones past the newest `resolvedKept`', async () => {
    const store = await openStore();
    const alert = (key: string, fired: number): Omit<AlertRecord, 'id'> => ({
      key,
      rule: 'disk',
      kind: 'disk_free_below',
      site: 's',
      agent: key,
      labels: { collector: 'x' },
      value: 5,
      started_at: fired - 1,
      fired_at: fired,
      resolved_at: null,
      firing_sent: false,
      resolved_sent: false,
    });
    const ids = [await store.insertAlert(alert('a', 1)), await store.insertAlert(alert('b', 2)), await store.insertAlert(alert('c', 3))];
    expect(ids[1]).toBeGreaterThan(ids[0]!);
    // At most one active instance per key.
    await expect(store.insertAlert(alert('a', 4))).rejects.toThrow();
    await store.markAlertSent(ids[0]!, 'firing');
    await store.resolveAlert(ids[0]!, 10, 'gone', true, 1);
    await store.resolveAlert(ids[1]!, 11, 7, false, 1);
    const all = await store.loadAlerts(5);
    // a was dropped: only the newest resolved one is kept.
    expect(all.map((x) => [x.key, x.resolved_at, x.value, x.firing_sent, x.resolved_sent])).toEqual([
      ['b', 11, 7, false, false],
      ['c', null, 5, false, false],
    ]);
    expect(all[1]).toEqual({ ...alert('c', 3), id: ids[2] });
  });

  it('answers the committed watermark of a stream epoch (0 when unknown)', async () => {
    const store = await openStore();
    expect(await store.watermark(SITE, AGENT, 'orders', EPOCH_A)).toBe(0);
    await applyBatches(store, [decoded(batchV2(1, 3))]);
    expect(await store.watermark(SITE, AGENT, 'orders', EPOCH_A)).toBe(3);
    expect((await store.streamTotals()).map((t) => [t.stream, t.stored])).toEqual([['orders', 3]]);
  });

  it('rolls a failed transaction back whole', async () => {
    const store = await openStore();
    await expect(
      store.transaction(async (tx) => {
        const s = await tx.openStream(SITE, AGENT, 'orders', EPOCH_A);
        await tx.insertSegment(s.id, 1, 1, '[{"seq":1,"id":"x","ts":1,"source":"t","data":{}}]');
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(await store.listStreams()).toEqual([]);
    expect(await store.watermark(SITE, AGENT, 'orders', EPOCH_A)).toBe(0);
  });
});

describe('PostgreSQL store shared by several relays', () => {
  const pgf = postgresStoreFactory();
  afterAll(() => pgf.dispose());

  it('applies batches of one stream from three stores at once (each with its own pool): every seq once, in order, the cursor exact', async () => {
    const place = await pgf.place();
    const stores = [await pgf.open(place, { dedupeWindowMs: 86_400_000, log: silent })];
    stores.push(await pgf.open(place, { dedupeWindowMs: 86_400_000, log: silent }), await pgf.open(place, { dedupeWindowMs: 86_400_000, log: silent }));
    try {
      // 3 agents' streams, 40 batches of 25 each; each batch goes to the store (relay) i % 3, and every
      // relay applies its share as fast as it can, retrying a gap after its predecessor (as the agent
      // would resend): concurrent transactions on one stream must serialize on its row lock.
      const streams = ['s1', 's2', 's3'];
      const batches = streams.flatMap((stream) => range(0, 39).map((i) => ({ stream, b: decoded(batchV2(i * 25 + 1, i * 25 + 25, { stream, idPrefix: `${stream}#` })) })));
      const byRelay: (typeof batches)[] = [[], [], []];
      batches.forEach((x, i) => byRelay[i % 3]!.push(x));
      await Promise.all(
        byRelay.map(async (mine, r) => {
          for (const { b } of mine) {
            for (;;) {
              const [o] = await applyBatches(stores[r]!, [b]);
              if (o!.status === 'ok') break;
              expect(o!.status).toBe('gap');
              await new Promise((res) => setTimeout(res, 2));
            }
          }
        }),
      );
      for (const stream of streams) {
        const ev = await stores[0]!.listEvents({ site: SITE, agent: AGENT, stream, after: 0, limit: 10_000 });
        expect(ev.events.map((e) => e.seq)).toEqual(range(1, 1000));
        expect(new Set(ev.events.map((e) => e.id)).size).toBe(1000);
      }
      expect((await stores[1]!.listStreams()).map((s) => [s.stream, s.last_seq, s.stored, s.duplicate_ids])).toEqual(streams.map((s) => [s, 1000, 1000, 0]));
    } finally {
      for (const s of stores) await s.close();
    }
  });

  it('refuses a schema written by a newer relay (ERP_STORE_SCHEMA)', async () => {
    const place = await pgf.place();
    await (await pgf.open(place, { dedupeWindowMs: 0, log: silent })).close();
    const db = await pgf.database();
    await db.exec(`UPDATE ${place}.schema_version SET version = version + 1`);
    await expect(pgf.open(place, { dedupeWindowMs: 0, log: silent })).rejects.toMatchObject({ code: 'ERP_STORE_SCHEMA' });
  });

  it('names where it could not connect, never the password (ERP_STORE_UNAVAILABLE)', async () => {
    const { PostgresRelayStore } = await import('../../../cloud-relay/store/postgres-store.js');
    const err = await PostgresRelayStore.open({
      url: 'postgres://postgres:sekrit-pass@127.0.0.1:1/nowhere',
      poolSize: 2,
      schema: 'x',
      statementTimeoutMs: 1000,
      dedupeWindowMs: 0,
      log: silent,
    }).then(
      () => new Error('opened'),
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err).toMatchObject({ code: 'ERP_STORE_UNAVAILABLE' });
    expect(err.message).toContain('127.0.0.1:1/nowhere');
    expect(err.message).not.toContain('sekrit');
  });
});
