import { describe, expect, it } from 'vitest';
import { decodeEventBatch, type DecodeResult } from '../../../cloud-relay/ingest/decode.js';
import { eventBatchV2Envelope } from '../../../common/wire-v2.js';
import { AGENT, SITE, batchV1, batchV2 } from '../../helpers/relay-wire.js';

const topic = (version: 1 | 2) => ({ version, site: SITE, agent: AGENT, stream: 'orders' });
const decode = (version: 1 | 2, body: unknown, maxRecordBytes = 1 << 20): DecodeResult =>
  decodeEventBatch(topic(version), Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), { maxRecordBytes });

describe('decodeEventBatch', () => {
  it('v2: refuses the envelope exactly where eventBatchV2Envelope does on the records themselves', () => {
    const ok = batchV2(1, 2);
    const cases: unknown[] = [
      { ...ok, records: [5, ok.records[1]] },
      { ...ok, records: [[ok.records[0]], ok.records[1]] },
      { ...ok, records: [null, ok.records[1]] },
      { ...ok, records: [{ ...ok.records[0], seq: '1' }, ok.records[1]] },
      { ...ok, records: [{ ...ok.records[0], seq: 0 }, ok.records[1]] },
      { ...ok, records: 'none' },
      { ...ok, records: [ok.records[1], ok.records[1]] },
      { ...ok, skipped: [{ from: 3, to: 2, reason: 'dead_letter' }] },
    ];
    for (const c of cases) {
      const direct = eventBatchV2Envelope.safeParse(c);
      expect(direct.success).toBe(false);
      const issue = direct.error!.issues[0]!;
      expect(decode(2, c)).toEqual({ ok: false, reason: 'invalid_schema', detail: `${issue.path.join('.') || '(root)'}: ${issue.message}` });
    }
  });

  it('v2: takes records and skipped ranges in any order and hands them over in seq order', () => {
    const b = batchV2(3, 5, { skipped: [{ from: 6, to: 6, reason: 'dead_letter' }, { from: 1, to: 2, reason: 'dropped' }] });
    b.records.reverse();
    const r = decode(2, b);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.batch.records.map((x) => x.seq)).toEqual([3, 4, 5]);
    expect(r.batch.skipped.map((x) => x.from)).toEqual([1, 6]);
    expect(r.batch.records.every((x) => x.problem === undefined && x.json !== undefined)).toBe(true);
  });

  it('v2: measures records in UTF-8 bytes of their JSON against limits.max_record_bytes', () => {
    const b = batchV2(1, 1);
    b.records[0]!.data = 'é'.repeat(100); // 200 bytes of UTF-8 in 100 UTF-16 units
    const size = Buffer.byteLength(JSON.stringify({ id: b.records[0]!.id, source: b.records[0]!.source, ts: b.records[0]!.ts, correlation_id: null, data: b.records[0]!.data, seq: 1 }));
    const at = decode(2, b, size);
    const over = decode(2, b, size - 1);
    expect(at.ok && at.batch.records[0]!.problem).toBe(undefined);
    expect(over.ok && over.batch.records[0]!.problem).toEqual({ code: 'record_too_large', detail: `over limits.max_record_bytes (${size - 1})` });
  });

  it('checks the payload version against the topic version', () => {
    expect(decode(1, batchV2(1, 1))).toMatchObject({ ok: false, reason: 'invalid_schema', detail: 'payload v 2 on a v1 topic' });
    expect(decode(2, batchV1(1, 1))).toMatchObject({ ok: false, reason: 'invalid_schema', detail: 'payload v 1 on a v2 topic' });
    expect(decode(2, [batchV2(1, 1)])).toMatchObject({ ok: false, reason: 'invalid_schema', detail: 'payload v absent on a v2 topic' });
    expect(decode(2, '{"v":2')).toMatchObject({ ok: false, reason: 'invalid_json' });
  });

  it('v1: turns dropped_upto into a skipped range 1..dropped_upto (reason dropped)', () => {
    const r = decode(1, batchV1(8, 9, { dropped_upto: 7 }));
    expect(r.ok && r.batch.skipped).toEqual([{ from: 1, to: 7, reason: 'dropped' }]);
    const none = decode(1, batchV1(1, 1, { dropped_upto: 0 }));
    expect(none.ok && none.batch.skipped).toEqual([]);
  });

  // Found by the fuzz test (test/e2e/relay-fuzz.test.ts): JSON.parse takes any depth, but re-encoding
  // a record nested 200 000 deep overflowed the stack, a RangeError out of ingest that ended the relay.
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const withDeepData = (b: object) => JSON.stringify(b).replace('"data":{', `"data":{"x":${deep(200_000)},`);

  it('v2: a record nested too deeply to encode again is refused by itself (invalid_record), not thrown', () => {
    const r = decode(2, withDeepData(batchV2(1, 2)));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.batch.records.map((x) => x.problem?.code)).toEqual(['invalid_record', undefined]); // the first record only
    expect(r.batch.records[0]!.problem!.detail).toMatch(/nested too deeply/);
  });

  it('v1: the same refuses the message (invalid_schema) instead of failing at the store', () => {
    expect(decode(1, withDeepData(batchV1(1, 1)))).toMatchObject({ ok: false, reason: 'invalid_schema', detail: expect.stringMatching(/^records\.0\.data: .*nested too deeply/) });
  });

  it('refuses a payload over limits.max_message_bytes unparsed (too_large), and one that is not UTF-8 (invalid_json)', () => {
    const body = Buffer.from(JSON.stringify(batchV2(1, 3)));
    const opts = (maxMessageBytes: number) => ({ maxRecordBytes: 1 << 20, maxMessageBytes });
    expect(decodeEventBatch(topic(2), body, opts(body.length)).ok).toBe(true);
    expect(decodeEventBatch(topic(2), body, opts(body.length - 1))).toEqual({ ok: false, reason: 'too_large', detail: `${body.length} bytes, over limits.max_message_bytes (${body.length - 1})` });
    const at = body.indexOf('file-drop');
    const broken = Buffer.concat([body.subarray(0, at), Buffer.from([0xc3, 0x28]), body.subarray(at)]);
    expect(decodeEventBatch(topic(2), broken, opts(1 << 20))).toEqual({ ok: false, reason: 'invalid_json', detail: 'not valid UTF-8' });
  });
});
