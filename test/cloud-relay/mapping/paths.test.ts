import { describe, expect, it } from 'vitest';
import { getAt, parsePath as parse, type Segment } from '../../../cloud-relay/mapping/paths.js';

const parsePath = (text: string) => parse(text) as Segment[];

describe('getAt', () => {
  it('reads own fields and array items only: a name every object inherits is missing, not a function', () => {
    const record = { order: { lines: [{ sku: 'A' }] }, qty: 0 };
    expect(getAt(record, parsePath('order.lines[0].sku'))).toBe('A');
    expect(getAt(record, parsePath('qty'))).toBe(0);
    for (const p of ['toString', 'constructor', 'order.hasOwnProperty', 'order.lines[0].valueOf']) {
      expect(getAt(record, parsePath(p)), p).toBeUndefined();
    }
  });
});
