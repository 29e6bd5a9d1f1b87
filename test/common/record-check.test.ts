import { describe, expect, it } from 'vitest';
import { CHECKED_RECORD_FIELDS, captureFieldsOk, checkRecordV2, isCheckedField } from '../../common/record-check.js';
import { captureRecord, encodeRecordBody, wireRecordV2, type CaptureRecord } from '../../common/wire-v2.js';

const ABSENT = Symbol('absent');

/** Values on both sides of every limit a record field can have, and of every type. */
function probeValues(): unknown[] {
  const values: unknown[] = [ABSENT, null, undefined, true, false, 0, -0, -1, 1, 1.5, 2 ** 31, 2 ** 53 - 1, 2 ** 53, -(2 ** 53), 1e300, Number.NaN, Infinity, {}, [], { a: 1 }, [1], '1', 'x'];
  // Strings of every length up to past the longest limit: a changed limit anywhere below is caught.
  for (let n = 0; n <= 1_100; n++) values.push('k'.repeat(n));
  // zod counts code points: a surrogate pair is one, a lone surrogate one too.
  for (const n of [0, 1, 2, 100, 199, 200, 201, 511, 512, 513, 1023, 1024, 1025]) {
    values.push('😀'.repeat(n), `x${'😀'.repeat(n)}`, '\ud800'.repeat(n), `${'😀'.repeat(n)}\udc00`, 'é'.repeat(n));
  }
  return values;
}

const full = { id: 'file:1', source: 'file-drop:orders', ts: 1_700_000_000_000, source_ts: 1_699_000_000_000, key: 'SO-1|1', txn: 't-1', correlation_id: 'file:abc', data: { a: 1 }, seq: 7 };
const minimal = { id: 'file:1', source: 'file-drop:orders', ts: 1_700_000_000_000, data: null, seq: 7 };

/** The capture check (the writer's quick path) may only say yes where captureRecord does. */
function agreeCapture(input: Record<string, unknown>): void {
  const fast = input.data !== undefined && captureFieldsOk(input.id, input.source, input.ts, input.source_ts, input.key, input.txn, input.correlation_id);
  const zod = captureRecord.safeParse(input);
  if (fast) expect({ input, zodAccepts: zod.success }).toEqual({ input, zodAccepts: true });
  else expect({ input, zodAccepts: zod.success }).toEqual({ input, zodAccepts: false });
  // And the record body the writer stores is exactly the JSON of the record as zod returns it.
  if (zod.success) {
    const body = encodeRecordBody(zod.data as CaptureRecord);
    const reference = JSON.stringify({
      id: zod.data.id,
      ts: zod.data.ts,
      source: zod.data.source,
      correlation_id: zod.data.correlation_id ?? null,
      source_ts: zod.data.source_ts ?? undefined,
      key: zod.data.key ?? undefined,
      txn: zod.data.txn ?? undefined,
      data: zod.data.data,
    });
    expect(`{${body}`).toBe(reference);
  }
}

function agree(input: unknown): void {
  const fast = checkRecordV2(input);
  const zod = wireRecordV2.safeParse(input);
  if (fast === undefined) {
    // The quick check may only step aside for records zod refuses (else it would buy nothing).
    expect({ input, zodAccepts: zod.success }).toEqual({ input, zodAccepts: false });
  } else {
    expect(zod.success).toBe(true);
    expect(fast).toStrictEqual(zod.data);
  }
}

describe('the quick v2 record check agrees with wireRecordV2', () => {
  it('knows exactly the schema fields', () => {
    expect([...CHECKED_RECORD_FIELDS].sort()).toEqual(Object.keys(wireRecordV2.shape).sort());
  });

  it('tells the checked fields from any other key', () => {
    for (const f of CHECKED_RECORD_FIELDS) expect(isCheckedField(f)).toBe(true);
    for (const k of ['', 'Id', 'ID', 'seq ', 'extra', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'sourceTs', 'correlationId', 'datas']) expect(isCheckedField(k)).toBe(false);
  });

  it('accepts and refuses what the schema does, field by field, on both sides of each limit', () => {
    const values = probeValues();
    let probes = 0;
    for (const base of [full, minimal]) {
      agree(base);
      for (const field of Object.keys(wireRecordV2.shape)) {
        for (const v of values) {
          const r: Record<string, unknown> = { ...base };
          if (v === ABSENT) delete r[field];
          else r[field] = v;
          agree(r);
          if (field !== 'seq') {
            const { seq: _seq, ...capture } = r;
            agreeCapture(capture);
          }
          probes++;
        }
      }
    }
    expect(probes).toBeGreaterThan(19_000);
  });

  it('refuses what is not a record object, as the schema does', () => {
    for (const v of [null, undefined, 1, 'record', [], [full], true]) agree(v);
    // Unknown fields are dropped from the result, as zod strips them.
    expect(checkRecordV2({ ...full, extra: 1 })).toStrictEqual(wireRecordV2.parse({ ...full, extra: 1 }));
  });
});
