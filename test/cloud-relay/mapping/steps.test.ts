import { describe, expect, it } from 'vitest';
import { compileStep, FieldFailure, stepSchema } from '../../../cloud-relay/mapping/steps.js';
import type { MappableEvent } from '../../../cloud-relay/mapping/event.js';

const event: MappableEvent = {
  site: 'lyon',
  agent: 'edge-1',
  stream: 'orders',
  seq: 7,
  id: 'abc:7',
  ts: Date.UTC(2026, 11, 3, 10, 0, 0),
  source: 'file-drop:orders',
  correlation_id: 'file:abc',
  source_ts: Date.UTC(2026, 11, 3, 9, 0, 0),
  key: null,
  data: { file: 'orders.csv', line: 8, fields: { order_id: 'SO-1' } },
};

/** Runs one step (as the YAML would give it) on a copy of `doc`: the document after it, or the failure. */
function run(step: Record<string, unknown>, doc: Record<string, unknown>): Record<string, unknown> {
  const compiled = compileStep(stepSchema.parse(step), 0);
  const copy = structuredClone(doc);
  compiled(copy, event);
  return copy;
}

function failure(step: Record<string, unknown>, doc: Record<string, unknown>): { field: string; reason: string } {
  try {
    run(step, doc);
  } catch (err) {
    expect(err).toBeInstanceOf(FieldFailure);
    const f = err as FieldFailure;
    return { field: f.field, reason: f.reason };
  }
  throw new Error('the step did not fail');
}

describe('mapping steps', () => {
  it('rename moves a value to a nested path, creating objects and arrays on the way', () => {
    expect(run({ op: 'rename', from: 'sku', to: 'lines[0].sku' }, { sku: 'X1', keep: 1 })).toEqual({ lines: [{ sku: 'X1' }], keep: 1 });
    expect(run({ op: 'rename', from: "['Order No']", to: 'order.number' }, { 'Order No': '42' })).toEqual({ order: { number: '42' } });
    expect(failure({ op: 'rename', from: 'sku', to: 'x' }, {})).toEqual({ field: 'sku', reason: 'step 1 (rename): is missing' });
    expect(run({ op: 'rename', from: 'sku', to: 'x', if_missing: 'omit' }, { a: 1 })).toEqual({ a: 1 });
    expect(failure({ op: 'rename', from: 'a', to: 'b.c' }, { a: 1, b: 'text' })).toEqual({ field: 'b.c', reason: 'step 1 (rename): b holds a plain value, so nothing can be written below it' });
  });

  it("copy keeps the source, and reads the record's envelope ($site, $captured_at, $data.…)", () => {
    expect(run({ op: 'copy', from: 'a', to: 'b' }, { a: { x: 1 } })).toEqual({ a: { x: 1 }, b: { x: 1 } });
    expect(run({ op: 'copy', from: '$site', to: 'site' }, {})).toEqual({ site: 'lyon' });
    expect(run({ op: 'copy', from: '$captured_at', to: 't' }, {})).toEqual({ t: '2026-12-03T10:00:00.000Z' });
    expect(run({ op: 'copy', from: '$source_at', to: 't' }, {})).toEqual({ t: '2026-12-03T09:00:00.000Z' });
    expect(run({ op: 'copy', from: '$data.file', to: 'f' }, {})).toEqual({ f: 'orders.csv' });
    expect(failure({ op: 'copy', from: '$key', to: 'k' }, {})).toEqual({ field: '$key', reason: 'step 1 (copy): is missing' });
  });

  it('drop removes fields (absent ones are fine), array elements included', () => {
    expect(run({ op: 'drop', fields: ['a', 'b.c', 'gone', 'l[0]'] }, { a: 1, b: { c: 2, d: 3 }, l: [1, 2] })).toEqual({ b: { d: 3 }, l: [2] });
  });

  it('constant writes a YAML value; each event gets its own copy', () => {
    const step = compileStep(stepSchema.parse({ op: 'constant', to: 'ship_to', value: { country: 'FR' } }), 0);
    const a: Record<string, unknown> = {};
    const b: Record<string, unknown> = {};
    step(a, event);
    step(b, event);
    (a['ship_to'] as Record<string, unknown>)['country'] = 'DE';
    expect(b).toEqual({ ship_to: { country: 'FR' } });
  });

  it('cast converts in place; a value that does not fit names the field and the value', () => {
    expect(run({ op: 'cast', field: 'q', to: 'integer' }, { q: '12.000' })).toEqual({ q: 12 });
    expect(run({ op: 'cast', field: 'p', to: 'decimal', scale: 2, decimal_separator: ',' }, { p: '4,5' })).toEqual({ p: '4.50' });
    expect(failure({ op: 'cast', field: 'lines[0].q', to: 'number' }, { lines: [{ q: 'ten' }] })).toEqual({
      field: 'lines[0].q',
      reason: 'step 1 (cast): cannot cast to number: "ten" is not a number',
    });
    expect(failure({ op: 'cast', field: 'q', to: 'integer' }, { q: '' })).toEqual({ field: 'q', reason: 'step 1 (cast): is missing or empty' });
    expect(run({ op: 'cast', field: 'q', to: 'integer', if_missing: 'omit' }, { q: ' ', r: 1 })).toEqual({ r: 1 });
  });

  it('date parses in the source zone to ISO 8601 UTC, in place or to another field', () => {
    expect(run({ op: 'date', field: 'd', format: 'dd.MM.yyyy HH:mm', zone: 'Europe/Paris' }, { d: '03.12.2026 11:00' })).toEqual({ d: '2026-12-03T10:00:00.000Z' });
    expect(run({ op: 'date', field: 'd', format: 'epoch_s', to: 'at' }, { d: 1_700_000_000 })).toEqual({ d: 1_700_000_000, at: '2023-11-14T22:13:20.000Z' });
    expect(failure({ op: 'date', field: 'd', format: 'dd.MM.yyyy', zone: 'UTC' }, { d: '2026-12-03' })).toEqual({
      field: 'd',
      reason: 'step 1 (date): "2026-12-03" does not match the format "dd.MM.yyyy"',
    });
    expect(failure({ op: 'date', field: 'd', zone: 'UTC' }, { d: [1] })).toEqual({ field: 'd', reason: 'step 1 (date): a list is not a date' });
  });

  it('lookup maps codes through a table, with a default or an error naming the value', () => {
    const table = { LYS: 'lyon-dc', PAR: { code: 'paris' } };
    expect(run({ op: 'lookup', field: 'w', table, to: 'site' }, { w: 'LYS' })).toEqual({ w: 'LYS', site: 'lyon-dc' });
    expect(run({ op: 'lookup', field: 'w', table, ignore_case: true }, { w: 'par' })).toEqual({ w: { code: 'paris' } });
    expect(run({ op: 'lookup', field: 'w', table, default: null }, { w: 'BER' })).toEqual({ w: null });
    expect(run({ op: 'lookup', field: 'n', table: { '1': 'one' } }, { n: 1 })).toEqual({ n: 'one' });
    expect(run({ op: 'lookup', field: 'w', table: { X: null }, default: 'other' }, { w: 'X' })).toEqual({ w: null });
    expect(failure({ op: 'lookup', field: 'w', table }, { w: 'BER' })).toEqual({
      field: 'w',
      reason: 'step 1 (lookup): "BER" is not in the lookup table (and the step has no default)',
    });
  });
});

describe('mapping step schemas', () => {
  const problems = (step: unknown) => {
    const r = stepSchema.safeParse(step);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };

  it('refuses an unknown op, an unknown cast type, a bad path, a bad date format or zone, naming the key', () => {
    expect(problems({ op: 'renam', from: 'a', to: 'b' })[0]).toMatch(/^op: Invalid discriminator value. Expected 'rename' \| 'copy'/);
    expect(problems({ op: 'cast', field: 'a', to: 'float' })[0]).toMatch(/^to: Invalid option: expected one of "string"\|"number"\|"integer"\|"boolean"\|"decimal"/);
    expect(problems({ op: 'cast', field: 'a', to: 'integer', scale: 2 })).toEqual(['scale: scale applies to decimal only']);
    expect(problems({ op: 'rename', from: 'a..b', to: 'b' })[0]).toMatch(/^from: field path "a..b" cannot read/);
    expect(problems({ op: 'rename', from: 'a', to: '$site' })[0]).toMatch(/^to: \$site: fields starting with "\$" are read-only/);
    expect(problems({ op: 'copy', from: '$nope', to: 'a' })[0]).toMatch(/^from: unknown record field "\$nope"/);
    expect(problems({ op: 'constant', to: 'a.__proto__.x', value: 1 })[0]).toMatch(/"__proto__" cannot be a field name here/);
    expect(problems({ op: 'date', field: 'd', format: 'yyyy-MM-dd HH:mm' })).toEqual(['zone: format "yyyy-MM-dd HH:mm" has no offset (XXX): give the source\'s zone, e.g. zone: Europe/Paris (or UTC)']);
    expect(problems({ op: 'date', field: 'd', format: 'yyyy-MM-dd Q', zone: 'UTC' })[0]).toMatch(/^format: format "yyyy-MM-dd Q": unknown pattern "Q"/);
    expect(problems({ op: 'date', field: 'd', zone: 'Europe/Lyon' })).toEqual(['zone: unknown IANA time zone "Europe/Lyon" (e.g. Europe/Paris, America/Chicago, UTC)']);
    expect(problems({ op: 'lookup', field: 'w', table: {} })).toEqual(['table: the table is empty']);
    expect(problems({ op: 'lookup', field: 'w', table: { a: 1, A: 2 }, ignore_case: true })).toEqual(['table: with ignore_case two keys of the table are the same']);
    expect(problems({ op: 'drop', fields: [] })).toEqual(['fields: list at least one field']);
    expect(problems({ op: 'rename', from: 'a', to: 'b', extra: 1 })[0]).toMatch(/Unrecognized key: "extra"/);
  });
});
