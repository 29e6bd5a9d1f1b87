/**
 * The forwarder against a relay played by the test's own MQTT client on a real broker: which wire
 * version it speaks, and what it does with every kind of ack — forged ones included.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger } from '../../../common/logger.js';
import { RELAY_STATUS_TOPIC, eventBatch } from '../../../common/wire-v1.js';
import { ackTopicV2, eventBatchV2, type AckV2 } from '../../../common/wire-v2.js';
import { Outbox, type NewRecord } from '../../../agent/outbox/outbox.js';
import type { Forwarder } from '../../../agent/transport/forwarder.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../../cloud-relay/embedded-broker.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { waitFor } from '../../helpers/net.js';
import { testOutboxOptions } from '../../helpers/outbox.js';
import { testForwarder } from '../../helpers/forwarder.js';

const SITE = 'site-k';
const AGENT = 'agent-k';
const STREAM = 'orders';

interface Received {
  topic: string;
  v: number;
  epoch: string;
  first: number;
  last: number;
  seqs: number[];
  ids: string[];
  skipped: { from: number; to: number; reason: string }[];
  droppedUpto?: number;
}

/** The relay, as far as the agent can tell: a retained status, batches in, acks out. */
class FakeRelay {
  readonly batches: Received[] = [];
  private stopped = false;
  private constructor(private readonly client: MqttClient) {}

  static async start(url: string, wire: number[] | undefined): Promise<FakeRelay> {
    const client = await mqtt.connectAsync(url, { clientId: `fake-relay-${Math.random()}` });
    const relay = new FakeRelay(client);
    client.on('message', (topic, payload) => relay.onBatch(topic, payload));
    await client.subscribeAsync(['erp-edge/v1/+/+/events/#', 'erp-edge/v2/+/+/events/#'], { qos: 1 });
    const status = { v: 1, online: true, id: 'fake-relay', started_at: Date.now(), ...(wire ? { wire } : {}) };
    await client.publishAsync(RELAY_STATUS_TOPIC, JSON.stringify(status), { qos: 1, retain: true });
    return relay;
  }

  private onBatch(topic: string, payload: Buffer): void {
    const json = JSON.parse(payload.toString('utf8')) as { v: number };
    if (json.v === 2) {
      const b = eventBatchV2.parse(json);
      const seqs = b.records.map((r) => r.seq);
      const skipped = b.skipped ?? [];
      const all = [...seqs, ...skipped.flatMap((s) => [s.from, s.to])];
      this.batches.push({ topic, v: 2, epoch: b.epoch, first: Math.min(...all), last: Math.max(...all), seqs, ids: b.records.map((r) => r.id), skipped });
    } else {
      const b = eventBatch.parse(json);
      const seqs = b.records.map((r) => r.seq);
      this.batches.push({ topic, v: 1, epoch: b.epoch, first: seqs[0]!, last: seqs[seqs.length - 1]!, seqs, ids: b.records.map((r) => r.id), skipped: [], droppedUpto: b.dropped_upto });
    }
  }

  async ack(a: Omit<AckV2, 'v' | 'stream'> & { stream?: string }): Promise<void> {
    await this.client.publishAsync(ackTopicV2(SITE, AGENT), JSON.stringify({ v: 2, stream: STREAM, ...a }), { qos: 1 });
  }

  async ackV1(epoch: string, upto: number, status: 'ok' | 'gap' = 'ok'): Promise<void> {
    await this.client.publishAsync(`erp-edge/v1/${SITE}/${AGENT}/ack`, JSON.stringify({ v: 1, stream: STREAM, epoch, upto, status }), { qos: 1 });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.client.publishAsync(RELAY_STATUS_TOPIC, '', { qos: 1, retain: true });
    await this.client.endAsync();
  }
}

const lines: string[] = [];
const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
let dir: string;
let cleanup: () => void;
let broker: EmbeddedBroker;
const stops: (() => Promise<void> | void)[] = [];

beforeEach(async () => {
  ({ dir, cleanup } = makeTempDir());
  lines.length = 0;
  broker = await startEmbeddedBroker('127.0.0.1', 0, logger);
});
afterEach(async () => {
  while (stops.length) await stops.pop()!();
  await broker.close();
  cleanup();
});

const recs = (from: number, to: number): NewRecord[] => Array.from({ length: to - from + 1 }, (_, i) => ({ id: `r${from + i}`, source: 'test:orders', data: { n: from + i } }));

async function setup(wire: number[] | undefined, opts: { batchMaxRecords?: number; maxInflight?: number } = {}) {
  const relay = await FakeRelay.start(broker.url, wire);
  const outbox = new Outbox(testOutboxOptions(join(dir, 'outbox.db'), { replayWindowMs: 0 }));
  const forwarder: Forwarder = testForwarder({
    outbox,
    site: SITE,
    agent: AGENT,
    url: broker.url,
    logger,
    batchMaxRecords: opts.batchMaxRecords ?? 10,
    maxInflight: opts.maxInflight ?? 1,
    ackTimeoutMs: 60_000,
  });
  stops.push(() => relay.stop(), () => outbox.close(), () => forwarder.stop());
  forwarder.start();
  await waitFor('forwarder connected', () => forwarder.getStats().connected, 10_000);
  return { relay, outbox, forwarder };
}

/**
 * Publishes a marker ack (of an epoch the agent ignores) and waits until the agent has seen it: the
 * acks published before it, on the same topic by the same client, have been handled by then.
 */
async function settle(relay: FakeRelay): Promise<void> {
  const marker = `marker-${Math.random().toString(36).slice(2)}`;
  await relay.ack({ epoch: marker, upto: 0, status: 'ok' });
  await waitFor('the marker ack went through', () => lines.some((l) => l.includes(marker)), 5_000);
}

describe('forwarder: wire version and acks', () => {
  it('speaks v2 when the relay presence lists it, v1 when it does not; both directions end with every record once', async () => {
    for (const wire of [[1, 2], undefined]) {
      const { relay, outbox, forwarder } = await setup(wire, { batchMaxRecords: 25, maxInflight: 4 });
      await waitFor('relay status seen', () => forwarder.getStats().wire === (wire ? 2 : 1), 5_000);
      outbox.append(STREAM, recs(1, 100));
      await waitFor('100 records sent', () => relay.batches.reduce((n, b) => n + b.seqs.length, 0) >= 100, 10_000);
      const epoch = outbox.streamEpoch(STREAM);
      expect(relay.batches.every((b) => b.v === (wire ? 2 : 1) && b.topic.startsWith(wire ? 'erp-edge/v2/' : 'erp-edge/v1/'))).toBe(true);
      if (wire) await relay.ack({ epoch, upto: 100, status: 'ok' });
      else await relay.ackV1(epoch, 100);
      await waitFor('acked', () => outbox.ackedSeq(STREAM) === 100, 5_000);
      expect(relay.batches.flatMap((b) => b.seqs)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
      while (stops.length) await stops.pop()!();
      cleanup();
      ({ dir, cleanup } = makeTempDir());
    }
  });

  it('a forged ok for seqs it has not sent deletes nothing; a forged rejected for unsent seqs dead-letters nothing', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2]);
    outbox.append(STREAM, recs(1, 100));
    await waitFor('first batch sent', () => relay.batches.length === 1, 5_000);
    expect(relay.batches[0]!.seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const epoch = outbox.streamEpoch(STREAM);

    await relay.ack({ epoch, upto: 100, status: 'ok' });
    await relay.ack({ epoch, upto: 10, status: 'rejected', ranges: [{ from: 50, to: 60 }], ids: ['r50'], reason: 'forged' });
    await settle(relay);
    expect(outbox.ackedSeq(STREAM)).toBe(0);
    expect(outbox.readPending(STREAM, 0, 1_000)).toHaveLength(100);
    expect(outbox.deadLetters.list()).toEqual([]);
    expect(forwarder.getStats().ignoredAcks).toBe(2);
    expect(relay.batches).toHaveLength(1);

    // The real ack for what was sent still works.
    await relay.ack({ epoch, upto: 10, status: 'ok' });
    await waitFor('acked 10', () => outbox.ackedSeq(STREAM) === 10, 5_000);
    await waitFor('next batch', () => relay.batches.length === 2, 5_000);
    expect(relay.batches[1]!.seqs[0]).toBe(11);
  });

  it('rejected: the named records it sent go to the dead-letter table and the stream goes on with them skipped', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2]);
    outbox.append(STREAM, recs(1, 30));
    await waitFor('first batch', () => relay.batches.length === 1, 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    // The relay stored 1..4 and cannot take 5 nor 7.
    await relay.ack({ epoch, upto: 4, status: 'rejected', ranges: [{ from: 5, to: 5, reason: 'ts: expected number' }, { from: 7, to: 7 }], ids: ['r5', 'r7'], reason: 'invalid records' });
    await waitFor('resent after the rejection', () => relay.batches.length === 2, 5_000);
    expect(outbox.ackedSeq(STREAM)).toBe(4);
    const dead = outbox.deadLetters.list();
    expect(dead.map((d) => [d.seq, d.recordId, d.origin, d.reason])).toEqual([
      [5, 'r5', 'relay', 'ts: expected number'],
      [7, 'r7', 'relay', 'invalid records'],
    ]);
    const b = relay.batches[1]!;
    expect(b.skipped).toEqual([
      { from: 5, to: 5, reason: 'dead_letter' },
      { from: 7, to: 7, reason: 'dead_letter' },
    ]);
    expect(b.seqs).toEqual([6, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
    expect(forwarder.getStats().deadLettered).toBe(2);
    const status = outbox.streamStatus().find((s) => s.stream === STREAM)!;
    expect(status).toMatchObject({ deadLetters: 2, deadLettered: 2 });

    // Acked past them: the skips are gone, the rest flows.
    await relay.ack({ epoch, upto: 16, status: 'ok' });
    await waitFor('next batch', () => relay.batches.length === 3, 5_000);
    expect(outbox.skipsBetween(STREAM, 1, 100)).toEqual([]);
    expect(relay.batches[2]!.seqs[0]).toBe(17);
  });

  it('rejected at the tail of a stream: a batch with only skipped seqs tells the relay', async () => {
    const { relay, outbox } = await setup([1, 2]);
    outbox.append(STREAM, recs(1, 3));
    await waitFor('first batch', () => relay.batches.length === 1, 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    await relay.ack({ epoch, upto: 1, status: 'rejected', ranges: [{ from: 2, to: 3 }], reason: 'too large' });
    await waitFor('skip-only batch', () => relay.batches.length === 2, 5_000);
    expect(relay.batches[1]).toMatchObject({ seqs: [], skipped: [{ from: 2, to: 3, reason: 'dead_letter' }], first: 2, last: 3 });
  });

  it('conflict: the stream moves to a new epoch and everything not acked is renumbered from 1, in order (nothing the relay did not ack is deleted)', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2], { maxInflight: 2 });
    outbox.append(STREAM, recs(1, 25));
    await waitFor('two batches', () => relay.batches.length === 2, 5_000);
    const old = outbox.streamEpoch(STREAM);
    await relay.ack({ epoch: old, upto: 3, status: 'ok' });
    await waitFor('acked 3', () => outbox.ackedSeq(STREAM) === 3, 5_000);
    // The relay holds 1..40 of this epoch; seqs 8..20 carried other ids.
    await relay.ack({ epoch: old, upto: 40, status: 'conflict', ranges: [{ from: 8, to: 20 }], ids: ['x8'], reason: 'other records' });
    await waitFor('sent in the new epoch', () => relay.batches.some((b) => b.epoch !== old), 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    expect(epoch).not.toBe(old);
    const first = relay.batches.find((b) => b.epoch === epoch)!;
    // From the first unacked record (4), not from the first one the ack names (8): the relay's id
    // de-duplication recognises the ones it holds.
    expect(first.seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(first.ids).toEqual(['r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13']);
    expect(forwarder.getStats().rebases).toBe(1);
    // Acks of the old epoch are ignored from now on.
    await relay.ack({ epoch: old, upto: 25, status: 'ok' });
    await relay.ack({ epoch, upto: 10, status: 'ok' });
    await waitFor('acked in the new epoch', () => outbox.ackedSeq(STREAM) === 10, 5_000);
    await waitFor('rest sent', () => relay.batches.some((b) => b.epoch === epoch && b.seqs.includes(22)), 5_000);
    expect(outbox.lastSeq(STREAM)).toBe(22);
  });

  it('an ok from a relay that holds more than this outbox ever wrote (restored from an older copy) acknowledges what was sent and moves the stream to a new epoch before sending more', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2]);
    outbox.append(STREAM, recs(1, 5));
    await waitFor('first batch', () => relay.batches.length === 1, 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    // The relay compared the resent records with what it holds (same ids) and holds up to 1500.
    await relay.ack({ epoch, upto: 1_500, status: 'ok' });
    await waitFor('rebased', () => forwarder.getStats().rebases === 1, 5_000);
    const next = outbox.streamEpoch(STREAM);
    expect(next).not.toBe(epoch);
    // Nothing was pending: the new epoch starts empty, and what comes next starts at 1 in it (not at
    // 6 of the old epoch, which the relay holds with other records: a conflict).
    expect(outbox.lastSeq(STREAM)).toBe(0);
    outbox.append(STREAM, recs(6, 30));
    await waitFor('next batch', () => relay.batches.length === 2, 5_000);
    expect(relay.batches[1]!.epoch).toBe(next);
    expect(relay.batches[1]!.seqs[0]).toBe(1);
    expect(relay.batches[1]!.ids[0]).toBe('r6');
    // A forged ok within what this outbox wrote, but beyond what it sent, still does nothing.
    expect(relay.batches[1]!.seqs.at(-1)).toBe(10);
    await relay.ack({ epoch: next, upto: 25, status: 'ok' });
    await settle(relay);
    expect(outbox.ackedSeq(STREAM)).toBe(0);
    // An ok beyond what was sent in the old epoch is ignored (another epoch now).
    await relay.ack({ epoch, upto: 3_000, status: 'ok' });
    await settle(relay);
    expect(forwarder.getStats().rebases).toBe(1);
  });

  it('an ack status it does not know is logged once and never loops', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2]);
    outbox.append(STREAM, recs(1, 5));
    await waitFor('first batch', () => relay.batches.length === 1, 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    for (let i = 0; i < 3; i++) await relay.ack({ epoch, upto: 5, status: 'paused-by-operator' });
    await settle(relay);
    expect(lines.filter((l) => l.includes('paused-by-operator'))).toHaveLength(1);
    expect(outbox.ackedSeq(STREAM)).toBe(0);
    expect(relay.batches).toHaveLength(1);
  });

  it('v1 mode: a hole (records dead-lettered by a v2 relay that was then downgraded) is sent as dropped_upto only once the relay caught up', async () => {
    const { relay, outbox, forwarder } = await setup([1, 2], { maxInflight: 4, batchMaxRecords: 5 });
    outbox.append(STREAM, recs(1, 20));
    await waitFor('four batches', () => relay.batches.length === 4, 5_000);
    const epoch = outbox.streamEpoch(STREAM);
    await relay.ack({ epoch, upto: 5, status: 'rejected', ranges: [{ from: 6, to: 8 }], reason: 'bad' });
    await waitFor('resent in v2', () => relay.batches.length >= 5, 5_000);
    // Now the relay speaks v1 only.
    await relay.stop();
    const v1 = await FakeRelay.start(broker.url, undefined);
    stops.push(() => v1.stop());
    await waitFor('v1 now', () => forwarder.getStats().wire === 1, 5_000);
    // A v1 relay (re)subscribing: the agent resends from its last ack (5); the hole 6..8 waits until
    // the relay holds 5, which it does: dropped_upto 8 on the batch from 9.
    await waitFor('v1 batch', () => v1.batches.length >= 1, 5_000);
    expect(v1.batches[0]).toMatchObject({ v: 1, first: 9, droppedUpto: 8 });
    expect(v1.batches[0]!.seqs).toEqual([9, 10, 11, 12, 13]);
  });
});
