import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ingest } from '../../../cloud-relay/ingest/ingest.js';
import { RelayMetrics } from '../../../cloud-relay/metrics.js';
import { SqliteRelayStore } from '../../../cloud-relay/store/sqlite-store.js';
import { createLogger } from '../../../common/logger.js';
import { ack as ackV1, ackTopic, eventsTopic } from '../../../common/wire-v1.js';
import { ackTopicV2, ackV2, eventsTopicV2, type WireVersion } from '../../../common/wire-v2.js';
import { waitFor } from '../../helpers/net.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { AGENT, EPOCH_B, SITE, batchV1, batchV2 } from '../../helpers/relay-wire.js';

/** Collects the JSON log lines a pino logger writes. */
function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

describe('Ingest (decode → apply → ack, group commit, logs)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let store: SqliteRelayStore;
  let published: Array<{ topic: string; json: Record<string, unknown> }>;
  let metrics: RelayMetrics;
  let log: ReturnType<typeof captureLogger>;

  function ingest(wireVersions: WireVersion[] = [1, 2]): Ingest {
    return new Ingest({
      store,
      metrics,
      log: log.logger,
      wireVersions,
      maxRecordBytes: 1 << 20,
      publish: (topic, payload) => published.push({ topic, json: JSON.parse(payload) as Record<string, unknown> }),
    });
  }

  const send = (i: Ingest, b: { v: 1 | 2; site: string; agent: string; stream: string }) =>
    i.onEvents({ version: b.v, site: b.site, agent: b.agent, stream: b.stream }, (b.v === 1 ? eventsTopic : eventsTopicV2)(b.site, b.agent, b.stream), Buffer.from(JSON.stringify(b)));

  beforeEach(() => {
    tmp = makeTempDir('erp-edge-ingest-');
    store = new SqliteRelayStore({ path: join(tmp.dir, 'relay.db'), dedupeWindowMs: 86_400_000, log: createLogger({ level: 'silent' }) });
    published = [];
    metrics = new RelayMetrics();
    log = captureLogger();
  });
  afterEach(async () => {
    try {
      await store.close();
    } catch {
      /* closed by the test */
    }
    tmp.cleanup();
  });

  it('applies batches that arrive together in one group commit and acks each in its own version, after the commit', async () => {
    const i = ingest();
    send(i, batchV1(1, 2));
    send(i, batchV2(3, 4));
    send(i, batchV2(9, 9));
    // Nothing is stored or acked before the group commit runs.
    expect(published).toEqual([]);
    expect(await store.listStreams()).toEqual([]);
    await waitFor('three acks', () => published.length === 3);
    expect(published.map((p) => p.topic)).toEqual([ackTopic(SITE, AGENT), ackTopicV2(SITE, AGENT), ackTopicV2(SITE, AGENT)]);
    expect(ackV1.parse(published[0]!.json)).toEqual({ v: 1, stream: 'orders', epoch: 'epoch-aaaaaaaa', upto: 2, status: 'ok' });
    // v2 acks also carry the relay's time and the batch's sent_at (the agent's clock offset comes from them).
    expect(ackV2.parse(published[1]!.json)).toEqual({ v: 2, stream: 'orders', epoch: 'epoch-aaaaaaaa', upto: 4, status: 'ok', at: expect.any(Number), sent_at: expect.any(Number) });
    expect(ackV2.parse(published[2]!.json)).toEqual({ v: 2, stream: 'orders', epoch: 'epoch-aaaaaaaa', upto: 4, status: 'gap', at: expect.any(Number), sent_at: expect.any(Number) });
    expect(metrics.snapshot()).toMatchObject({ batches: 3, batches_by_wire: { v1: 1, v2: 2 }, records_stored: 4, gaps: 1 });
  });

  it('logs a new epoch once, with the earlier ones, and throttles repeated rejects to one line with a count', async () => {
    const i = ingest();
    send(i, batchV2(1, 1));
    await waitFor('ack 1', () => published.length === 1);
    send(i, batchV2(1, 1, { epoch: EPOCH_B, idPrefix: 'b#' }));
    await waitFor('ack 2', () => published.length === 2);
    const warns = log.lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatchObject({ epoch: EPOCH_B, previous: ['epoch-aaaaaaaa'], stream: 'orders', wire: 2 });
    expect(String(warns[0]!.msg)).toMatch(/new outbox epoch/);

    const topic = eventsTopicV2(SITE, AGENT, 'orders');
    for (let n = 0; n < 5; n++) i.onEvents({ version: 2, site: SITE, agent: AGENT, stream: 'orders' }, topic, Buffer.from('not json'));
    expect(metrics.rejected.invalid_json).toBe(5);
    const rejects = log.lines.filter((l) => l.msg === 'rejected message');
    expect(rejects).toHaveLength(1);
    expect(rejects[0]).toMatchObject({ topic, reason: 'invalid_json', count: 1, suppressed: 0 });
  });

  it('refuses a version not in wire_versions without an ack', async () => {
    const i = ingest([2]);
    send(i, batchV1(1, 1));
    send(i, batchV2(1, 1));
    await waitFor('the v2 ack', () => published.length === 1);
    expect(published[0]!.topic).toBe(ackTopicV2(SITE, AGENT));
    expect(metrics.rejected.unsupported_version).toBe(1);
  });

  it('acks nothing when the store fails, and counts it', async () => {
    const i = ingest();
    send(i, batchV2(1, 2));
    void store.close(); // the group commit will find the store gone
    await waitFor('the store error', () => metrics.storeErrors === 1);
    expect(published).toEqual([]);
    expect(log.lines.find((l) => l.msg === 'store failed; batches not acked')).toMatchObject({ level: 50, batches: 1 });
  });

  it('with gap_wait (several relays), a batch ahead of the cursor waits for another instance to commit its predecessor instead of answering gap', async () => {
    const gapWaitMs = 5_000;
    const other = new Ingest({ store, metrics: new RelayMetrics(), log: log.logger, wireVersions: [2], maxRecordBytes: 1 << 20, publish: () => undefined });
    const waiting = new Ingest({ store, metrics, log: log.logger, wireVersions: [2], maxRecordBytes: 1 << 20, gapWaitMs, gapPollMs: 5, publish: (topic, payload) => published.push({ topic, json: JSON.parse(payload) as Record<string, unknown> }) });
    send(waiting, batchV2(6, 10));
    // Not answered while it waits (a functional bound, not a timing: the wait is 5 s).
    await waitFor('the batch applied once and found a gap', async () => (await store.listStreams()).length === 1);
    expect(published).toEqual([]);
    send(other, batchV2(1, 5));
    await waitFor('an ack', () => published.length === 1, 10_000);
    expect(ackV2.parse(published[0]!.json)).toMatchObject({ status: 'ok', upto: 10 });
    expect(metrics.snapshot()).toMatchObject({ gaps: 0, batches: 1 });
    expect(metrics.gapWaitsResolved).toBe(1);
    await other.close();
    await waiting.close();
  });

  it('with gap_wait, a predecessor that never comes is answered gap at the deadline', async () => {
    const waiting = new Ingest({ store, metrics, log: log.logger, wireVersions: [2], maxRecordBytes: 1 << 20, gapWaitMs: 50, gapPollMs: 5, publish: (topic, payload) => published.push({ topic, json: JSON.parse(payload) as Record<string, unknown> }) });
    send(waiting, batchV2(6, 10));
    await waitFor('an ack', () => published.length === 1, 10_000);
    expect(ackV2.parse(published[0]!.json)).toMatchObject({ status: 'gap', upto: 0 });
    expect(metrics.snapshot()).toMatchObject({ gaps: 1, batches: 1 });
    await waiting.close();
  });
});
