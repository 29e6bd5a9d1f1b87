/**
 * Input hardening (#12 item 6): 10 000 generated envelopes — valid v1/v2 batches mutated at the
 * object, text and byte level, random JSON, random bytes — published to a running relay (its own
 * process) through a real Mosquitto, with a valid stream interleaved. The relay must stay up,
 * account for every message (stored and acked, or refused and counted by reason) and carry the
 * valid stream exact and in order.
 *
 * The cases come from fast-check with a fixed seed (ERP_EDGE_FUZZ_SEED to try another): the same
 * seed gives the same 10 000 messages, so a failure names a seed that reproduces it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import mqtt from 'mqtt';
import type { RelayStats } from '../../cloud-relay/metrics.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { CliProcess, fetchAllEvents, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { EPOCH_A, EPOCH_B, SITE, batchV1, batchV2, servedV2 } from '../helpers/relay-wire.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);

const SEED = Number(process.env.ERP_EDGE_FUZZ_SEED ?? 12_012);
const CASES = 10_000;
/** The relay's limits in this test: small, so oversize messages are cheap to make. */
const MAX_RECORD_BYTES = 16 * 1024;
const MAX_MESSAGE_BYTES = 64 * 1024;
const FUZZ_SITE = 'fuzz-site';
const FUZZ_AGENT = 'fuzz-agent';
/** Many streams, batches mostly from seq 1: a fair share are next in their stream, so their records are judged (not a gap). */
const STREAMS = Array.from({ length: 500 }, (_, i) => `f${i}`);
/** The valid stream, on its own connection: one batch after every VALID_EVERY fuzz messages. */
const VALID_AGENT = 'valid-agent';
const VALID_EVERY = 20;
const VALID_BATCH = 4;

type Reason = keyof RelayStats['rejected'];
/** What a case must come to: a named refusal, or `any` (stored, or refused for some reason). */
type Expect = Reason | 'any';

interface Case {
  topic: string;
  payload: Buffer;
  expect: Expect;
}

type Obj = Record<string, unknown>;

// ---- object-level mutations of a valid batch ----

const weird = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.integer(),
  fc.double(), // NaN and ±Infinity become null in JSON
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(0, -1, 1.5, -0, 2 ** 53, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, 1e21, -1e21),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
  fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '0x10', '', ' ', '\u0000', '\ud800', 'null', 'undefined', '2', '01'),
);

type Mutation = (b: Obj) => void;

/** A top-level object (the batch) or one of its records. */
function target(b: Obj, pick: number): Obj {
  const records = Array.isArray(b.records) ? (b.records as unknown[]) : [];
  const objs = records.filter((r): r is Obj => typeof r === 'object' && r !== null && !Array.isArray(r));
  const all = [b, ...objs];
  return all[pick % all.length]!;
}

function keyOf(o: Obj, pick: number): string | undefined {
  const keys = Object.keys(o);
  return keys.length ? keys[pick % keys.length] : undefined;
}

/** Stands for JSON nested `depth` deep: JSON.stringify cannot write such a value, so the text is spliced in after it. */
function nested(depth: number): string {
  return `@@deep:${depth}@@`;
}

function spliceDeep(text: string): string {
  return text.replace(/"@@deep:(\d+)@@"/g, (_m, d: string) => '['.repeat(Number(d)) + ']'.repeat(Number(d)));
}

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // drop a field
  fc.tuple(fc.nat(), fc.nat()).map(([t, k]): Mutation => (b) => {
    const o = target(b, t);
    const key = keyOf(o, k);
    if (key) delete o[key];
  }),
  // a field of the wrong type or out of range
  fc.tuple(fc.nat(), fc.nat(), weird).map(([t, k, v]): Mutation => (b) => {
    const o = target(b, t);
    const key = keyOf(o, k);
    if (key) o[key] = v;
  }),
  // fields reordered (valid: still accepted)
  fc.nat().map((t): Mutation => (b) => {
    const o = target(b, t);
    const entries = Object.entries(o).reverse();
    for (const k of Object.keys(o)) delete o[k];
    for (const [k, v] of entries) o[k] = v;
  }),
  // a huge string in some field
  fc.tuple(fc.nat(), fc.nat(), fc.integer({ min: 500, max: 40_000 }), fc.constantFrom('x', 'é', '😀', '"\\')).map(([t, k, n, unit]): Mutation => (b) => {
    const o = target(b, t);
    const key = keyOf(o, k);
    if (key) o[key] = unit.repeat(Math.ceil(n / unit.length));
  }),
  // data nested deep (JSON.stringify overflows its stack past a few thousand levels)
  fc.tuple(fc.nat(), fc.integer({ min: 50, max: 20_000 })).map(([t, d]): Mutation => (b) => {
    target(b, t + 1).data = nested(d);
  }),
  // odd seqs
  fc.tuple(fc.nat(), fc.constantFrom(0, -1, -0, 1.5, 2 ** 53, 2 ** 53 + 1, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER, '1', null)).map(([t, seq]): Mutation => (b) => {
    const o = target(b, t + 1);
    if (o !== b) o.seq = seq;
  }),
  // skipped ranges overlapping the records, reversed, or with odd reasons
  fc.tuple(fc.integer({ min: -2, max: 60 }), fc.integer({ min: -2, max: 60 }), fc.constantFrom('dropped', 'dead_letter', '', 'x'.repeat(65), 'pruned')).map(([from, to, reason]): Mutation => (b) => {
    b.skipped = [...(Array.isArray(b.skipped) ? b.skipped : []), { from, to, reason }];
  }),
  // records duplicated or out of order
  fc.nat().map((i): Mutation => (b) => {
    if (!Array.isArray(b.records) || b.records.length === 0) return;
    const r = b.records as unknown[];
    if (i % 2 === 0) r.push(r[i % r.length]);
    else r.reverse();
  }),
  // unknown fields (valid: ignored)
  fc.tuple(fc.nat(), fc.string({ maxLength: 10 }), fc.jsonValue({ maxDepth: 2 })).map(([t, k, v]): Mutation => (b) => {
    target(b, t)[`x-${k}`] = v;
  }),
  // the envelope names another site, agent or stream than its topic
  fc.constantFrom('site', 'agent', 'stream').map((k): Mutation => (b) => {
    b[k] = typeof b[k] === 'string' ? `${b[k] as string}-other` : 'other';
  }),
);

// ---- text-level mutations (JSON that JSON.stringify cannot write) ----

type TextMutation = { text: (s: string) => string; invalidJson: boolean };

const textMutation: fc.Arbitrary<TextMutation> = fc.oneof(
  // a number JSON does not have, where a seq or ts stands
  fc.tuple(fc.constantFrom('seq', 'ts', 'sent_at'), fc.constantFrom('NaN', 'Infinity', '-Infinity', '0x10', '01', '+1', '.5', '1.', '1e999', '-0')).map(([field, token]) => ({
    text: (s: string) => s.replace(new RegExp(`"${field}":-?[0-9.e+]+`), `"${field}":${token}`),
    invalidJson: token !== '1e999' && token !== '-0',
  })),
  // a key twice (JSON.parse keeps the last)
  fc.tuple(fc.constantFrom('v', 'site', 'agent', 'stream', 'epoch', 'records', 'skipped'), fc.jsonValue({ maxDepth: 1 })).map(([key, v]) => ({
    text: (s: string) => (s.startsWith('{') ? `{${JSON.stringify(key)}:${JSON.stringify(v)},${s.slice(1)}` : s),
    invalidJson: false,
  })),
);

// ---- byte-level endings ----

type Final =
  | { kind: 'none' }
  | { kind: 'truncate'; at: number }
  | { kind: 'invalid-utf8'; at: number; bytes: number[] }
  | { kind: 'oversize'; extra: number };

const finalArb: fc.Arbitrary<Final> = fc.oneof(
  { weight: 6, arbitrary: fc.constant<Final>({ kind: 'none' }) },
  { weight: 1, arbitrary: fc.double({ min: 0, max: 0.999, noNaN: true }).map((at): Final => ({ kind: 'truncate', at })) },
  // 0xc0, 0xc1 and 0xf5..0xff never occur in UTF-8
  { weight: 1, arbitrary: fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.array(fc.constantFrom(0xc0, 0xc1, 0xf5, 0xfe, 0xff), { minLength: 1, maxLength: 4 })).map(([at, bytes]): Final => ({ kind: 'invalid-utf8', at, bytes })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 8_000 }).map((extra): Final => ({ kind: 'oversize', extra })) },
);

function applyFinal(text: string, f: Final): Buffer {
  const buf = Buffer.from(text, 'utf8');
  switch (f.kind) {
    case 'none':
      return buf;
    case 'truncate':
      // At least one byte: an empty payload is something else (a cleared retained message).
      return buf.subarray(0, Math.max(1, Math.floor(buf.length * f.at)));
    case 'invalid-utf8': {
      const at = Math.floor(buf.length * f.at);
      return Buffer.concat([buf.subarray(0, at), Buffer.from(f.bytes), buf.subarray(at)]);
    }
    case 'oversize':
      // Still JSON of the batch's shape, only larger than limits.max_message_bytes.
      return Buffer.from(text.startsWith('{') ? `{"pad":"${'p'.repeat(Math.max(0, MAX_MESSAGE_BYTES + f.extra - text.length))}",${text.slice(1)}` : text + ' '.repeat(MAX_MESSAGE_BYTES + f.extra), 'utf8');
  }
}

// ---- topics (all inside the relay's subscriptions: no message can go unseen) ----

type TopicKind = 'events' | 'other-stream' | 'extra-level' | 'no-stream' | 'health' | 'status';

const topicKind: fc.Arbitrary<TopicKind> = fc.oneof(
  { weight: 14, arbitrary: fc.constant<TopicKind>('events') },
  { weight: 1, arbitrary: fc.constantFrom<TopicKind>('other-stream', 'extra-level', 'no-stream', 'health', 'status') },
);

function topicFor(kind: TopicKind, version: 1 | 2, stream: string): string {
  const root = `erp-edge/v${version}/${FUZZ_SITE}/${FUZZ_AGENT}`;
  switch (kind) {
    case 'events':
      return `${root}/events/${stream}`;
    case 'other-stream':
      return `${root}/events/${stream}-x`;
    case 'extra-level':
      return `${root}/events/${stream}/extra`;
    case 'no-stream':
      return `${root}/events`;
    case 'health':
      return `erp-edge/v2/${FUZZ_SITE}/${FUZZ_AGENT}/health`;
    case 'status':
      return `erp-edge/v2/${FUZZ_SITE}/${FUZZ_AGENT}/status`;
  }
}

// ---- whole cases ----

const mutatedBatch = fc
  .record({
    version: fc.constantFrom<1 | 2>(1, 2),
    topicVersion: fc.oneof({ weight: 5, arbitrary: fc.constant<'same'>('same') }, { weight: 1, arbitrary: fc.constantFrom<1 | 2>(1, 2) }),
    from: fc.oneof({ weight: 3, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 2, max: 40 }) }),
    n: fc.integer({ min: 0, max: 6 }),
    stream: fc.constantFrom(...STREAMS),
    epoch: fc.constantFrom(EPOCH_A, EPOCH_B),
    mutations: fc.array(mutation, { maxLength: 3 }),
    text: fc.option(textMutation, { freq: 4 }),
    final: finalArb,
    topic: topicKind,
  })
  .map((c): Case => {
    const o = { site: FUZZ_SITE, agent: FUZZ_AGENT, stream: c.stream, epoch: c.epoch };
    const b = (c.version === 1 ? batchV1(c.from, c.from + c.n - 1, o) : batchV2(c.from, c.from + c.n - 1, o)) as unknown as Obj;
    for (const m of c.mutations) m(b);
    let text = spliceDeep(JSON.stringify(b));
    let invalidJson = false;
    if (c.text) {
      const t = c.text.text(text);
      if (t !== text) invalidJson = c.text.invalidJson;
      text = t;
    }
    const payload = applyFinal(text, c.final);
    const topicVersion = c.topicVersion === 'same' ? c.version : c.topicVersion;
    const topic = topicFor(c.topic, topicVersion, c.stream);
    return { topic, payload, expect: expectFor(c.topic, payload, c.final, invalidJson, c.mutations.length === 0 && topicVersion !== c.version) };
  });

/** What the relay must answer, in the order it checks: topic, size, bytes, JSON, version, the rest. */
function expectFor(kind: TopicKind, payload: Buffer, final: Final, invalidJson: boolean, wrongVersion: boolean): Expect {
  if (kind === 'extra-level' || kind === 'no-stream') return 'bad_topic';
  if (payload.length > MAX_MESSAGE_BYTES) return 'too_large';
  if (kind === 'health') return 'invalid_health'; // an event batch (or garbage) is never a valid health message
  if (kind === 'status') return 'invalid_presence';
  if (final.kind === 'truncate' || final.kind === 'invalid-utf8' || invalidJson) return 'invalid_json';
  if (wrongVersion) return 'invalid_schema';
  return 'any';
}

const garbage: fc.Arbitrary<Case> = fc.oneof(
  // random bytes
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 2_000 }), topicKind, fc.constantFrom<1 | 2>(1, 2)).map(([bytes, kind, v]): Case => {
    const payload = Buffer.from(bytes);
    const e = expectFor(kind, payload, { kind: 'none' }, false, false);
    return { topic: topicFor(kind, v, 'f1'), payload, expect: e };
  }),
  // random JSON (never a valid batch)
  fc.tuple(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom<1 | 2>(1, 2)).map(([v, version]): Case => ({
    topic: topicFor('events', version, 'f2'),
    payload: Buffer.from(JSON.stringify(v) ?? 'null'),
    expect: 'invalid_schema',
  })),
);

const caseArb = fc.oneof({ weight: 9, arbitrary: mutatedBatch }, { weight: 1, arbitrary: garbage });

function accounted(s: RelayStats): number {
  const rejected = Object.values(s.rejected).reduce((a, b) => a + b, 0);
  return s.batches + rejected + s.store_errors + s.health_messages + s.presence_messages;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe.skipIf(!hasMosquitto)('relay fuzz (#12 item 6): a running relay behind a real Mosquitto', () => {
  it(`takes ${CASES} generated envelopes: stays up, counts every one by reason, and the valid stream interleaved arrives exact and in order`, async () => {
    const { dir, cleanup } = makeTempDir('relay-fuzz-');
    cleanups.push(cleanup);
    const cases = fc.sample(caseArb, { numRuns: CASES, seed: SEED });
    expect(cases).toHaveLength(CASES);

    const mosquitto = await MosquittoProcess.start(dir);
    cleanups.push(() => mosquitto.stop());
    const httpPort = await freePort();
    const httpUrl = `http://127.0.0.1:${httpPort}`;
    const extra = `limits:\n  max_record_bytes: ${MAX_RECORD_BYTES}\n  max_message_bytes: ${MAX_MESSAGE_BYTES}\n`;
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: mosquitto.url, extra }));
    const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    relay.start();
    cleanups.push(() => relay.kill('SIGKILL'));
    await waitForHttp(httpUrl);
    const stats = async (): Promise<RelayStats> => (await (await fetch(`${httpUrl}/api/stats`)).json()) as RelayStats;
    // Subscribed once its retained status says online (it publishes that after subscribing).
    await waitFor('relay online', async () => {
      const r = await fetch(`${httpUrl}/healthz`);
      return r.ok;
    });
    const fuzzer = await mqtt.connectAsync(mosquitto.url, { clientId: 'fuzzer', reconnectPeriod: 0 });
    cleanups.push(() => fuzzer.endAsync(true));
    const valid = await mqtt.connectAsync(mosquitto.url, { clientId: 'valid-publisher', reconnectPeriod: 0 });
    cleanups.push(() => valid.endAsync(true));
    await waitFor('relay subscribed', async () => {
      const status = await new Promise<string | undefined>((resolve) => {
        const c = mqtt.connect(mosquitto.url, { reconnectPeriod: 0 });
        c.on('message', (_t, p) => {
          resolve(p.toString());
          c.end(true);
        });
        c.on('connect', () => c.subscribe('erp-edge/v1/relay/status'));
        setTimeout(() => {
          resolve(undefined);
          c.end(true);
        }, 500).unref();
      });
      return status?.includes('"online":true');
    });

    const acks: Array<{ status: string; upto: number }> = [];
    valid.on('message', (_t, p) => acks.push(JSON.parse(p.toString()) as { status: string; upto: number }));
    await valid.subscribeAsync(`erp-edge/v2/${SITE}/${VALID_AGENT}/ack`, { qos: 1 });

    const before = accounted(await stats());
    const sent: Array<Record<string, unknown>> = [];
    const inFlight: Promise<unknown>[] = [];
    let validBatches = 0;
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i]!;
      // In windows: mqtt.js adds a drain listener per write it cannot finish at once.
      if (inFlight.length >= 500) await Promise.all(inFlight.splice(0));
      inFlight.push(fuzzer.publishAsync(c.topic, c.payload, { qos: i % 2 === 0 ? 1 : 0 }));
      if (i % VALID_EVERY === VALID_EVERY - 1) {
        const from = validBatches * VALID_BATCH + 1;
        const b = batchV2(from, from + VALID_BATCH - 1, { agent: VALID_AGENT, tag: `v${validBatches}` });
        sent.push(...b.records);
        inFlight.push(valid.publishAsync(`erp-edge/v2/${SITE}/${VALID_AGENT}/events/orders`, JSON.stringify(b), { qos: 1 }));
        validBatches++;
      }
    }
    await Promise.all(inFlight);
    const total = before + CASES + validBatches;
    // Every message is accounted for once the counters reach the total (QoS 0 included: one local broker loses none).
    const s = await waitFor('every message accounted for', async () => {
      if (!relay.running) return 'exited' as const; // no use waiting: it fails below, with the log to read
      const st = await stats();
      return accounted(st) >= total ? st : undefined;
    }, 60_000, 100);
    if (s === 'exited') expect.fail(`the relay process exited under fuzzing (seed ${SEED}); see ${join(dir, 'relay.log')}`);

    console.log(`relay fuzz, seed ${SEED}: ${CASES} cases + ${validBatches} valid batches; batches ${s.batches}, rejected ${JSON.stringify(s.rejected)}, rejected records ${JSON.stringify(s.rejected_records)}`);
    expect(relay.running).toBe(true);
    expect((await fetch(`${httpUrl}/healthz`)).ok).toBe(true);
    expect(accounted(s)).toBe(total);
    expect(s.store_errors).toBe(0);
    expect(s.rejected.internal_error).toBe(0);
    // Each case whose refusal is certain adds to its reason: each reason holds at least those.
    const least: Partial<Record<Reason, number>> = {};
    for (const c of cases) if (c.expect !== 'any') least[c.expect] = (least[c.expect] ?? 0) + 1;
    for (const [reason, n] of Object.entries(least)) expect(s.rejected[reason as Reason], reason).toBeGreaterThanOrEqual(n);
    // The mix: every kind of refusal and acceptance occurred (the generator still reaches each).
    for (const reason of ['invalid_json', 'invalid_schema', 'topic_mismatch', 'bad_topic', 'too_large', 'invalid_health', 'invalid_presence'] as const) {
      expect(s.rejected[reason], reason).toBeGreaterThan(0);
    }
    expect(s.rejected_records.invalid_record + s.rejected_records.record_too_large).toBeGreaterThan(0);
    expect(s.batches).toBeGreaterThan(validBatches); // some fuzzed batches were valid and stored

    // The valid stream: every batch acked ok, in order, and stored exactly as sent.
    await waitFor('valid acks', () => acks.length >= validBatches, 30_000);
    expect(acks.map((a) => a.status)).toEqual(new Array(validBatches).fill('ok'));
    expect(acks.map((a) => a.upto)).toEqual(Array.from({ length: validBatches }, (_, i) => (i + 1) * VALID_BATCH));
    const events = await fetchAllEvents<Record<string, unknown> & { seq: number }>(httpUrl, SITE, VALID_AGENT, 'orders');
    expect(events.map((e) => ({ seq: e.seq, id: e.id, ts: e.ts, source: e.source, correlation_id: e.correlation_id, source_ts: e.source_ts, key: e.key, txn: e.txn, data: e.data }))).toEqual(sent.map(servedV2));
  }, 120_000);
});
