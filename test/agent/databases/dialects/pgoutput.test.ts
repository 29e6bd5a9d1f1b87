import { describe, expect, it } from 'vitest';
import { formatLsn, parseLsn, parseMessage, type RelationMessage } from '../../../../agent/databases/dialects/pgoutput.js';

/** Hand-built pgoutput v1 messages. */
const u8 = (v: number) => Buffer.from([v]);
const ch = (c: string) => Buffer.from(c, 'latin1');
const i16 = (v: number) => { const b = Buffer.alloc(2); b.writeInt16BE(v); return b; };
const i32 = (v: number) => { const b = Buffer.alloc(4); b.writeInt32BE(v); return b; };
const u64 = (v: bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64BE(v); return b; };
const str = (s: string) => Buffer.concat([Buffer.from(s, 'utf8'), u8(0)]);
const text = (s: string) => Buffer.concat([ch('t'), i32(Buffer.byteLength(s)), Buffer.from(s, 'utf8')]);
const tuple = (...cols: Buffer[]) => Buffer.concat([i16(cols.length), ...cols]);

const relationMsg = Buffer.concat([
  ch('R'), i32(16385), str('public'), str('orders'), ch('d'), i16(3),
  u8(1), str('id'), i32(23), i32(-1),
  u8(0), str('status'), i32(25), i32(-1),
  u8(0), str('updated_at'), i32(1184), i32(-1),
]);

describe('pgoutput v1 parser', () => {
  it('formats and parses LSNs', () => {
    expect(formatLsn(0x16b3748n)).toBe('0/16B3748');
    expect(formatLsn((0x1fn << 32n) | 0xabn)).toBe('1F/AB');
    expect(parseLsn('1F/AB')).toBe((0x1fn << 32n) | 0xabn);
    expect(parseLsn('0/16B3748') < parseLsn('0/16B3750')).toBe(true);
    expect(() => parseLsn('nope')).toThrow(/not an LSN/);
  });

  it('parses Begin, Commit and Origin', () => {
    expect(parseMessage(Buffer.concat([ch('B'), u64(0x16b3748n), u64(123n), i32(745)]), new Map())).toEqual({ tag: 'begin', finalLsn: '0/16B3748', commitTime: 123n, xid: 745 });
    expect(parseMessage(Buffer.concat([ch('C'), u8(0), u64(0x16b3748n), u64(0x16b3778n), u64(9n)]), new Map())).toEqual({ tag: 'commit', flags: 0, commitLsn: '0/16B3748', endLsn: '0/16B3778', commitTime: 9n });
    expect(parseMessage(Buffer.concat([ch('O'), u64(1n), str('node_a')]), new Map())).toEqual({ tag: 'origin', lsn: '0/1', name: 'node_a' });
  });

  it('parses a Relation with its key flags, and Type', () => {
    const rel = parseMessage(relationMsg, new Map()) as RelationMessage;
    expect(rel).toEqual({
      tag: 'relation', oid: 16385, schema: 'public', name: 'orders', replicaIdentity: 'd',
      columns: [
        { name: 'id', typeOid: 23, typmod: -1, isKey: true },
        { name: 'status', typeOid: 25, typmod: -1, isKey: false },
        { name: 'updated_at', typeOid: 1184, typmod: -1, isKey: false },
      ],
    });
    expect(parseMessage(Buffer.concat([ch('Y'), i32(99), str('public'), str('mood')]), new Map())).toEqual({ tag: 'type', oid: 99, schema: 'public', name: 'mood' });
  });

  const rels = new Map([[16385, parseMessage(relationMsg, new Map()) as RelationMessage]]);

  it('parses Insert tuples: text (UTF-8), null', () => {
    const m = parseMessage(Buffer.concat([ch('I'), i32(16385), ch('N'), tuple(text('1'), text('neu ö'), ch('n'))]), rels);
    expect(m).toEqual({ tag: 'insert', relation: 16385, newTuple: { values: { id: '1', status: 'neu ö', updated_at: null }, unchanged: [] } });
  });

  it('parses Update with and without an old tuple; unchanged TOAST stays absent and is named', () => {
    const plain = parseMessage(Buffer.concat([ch('U'), i32(16385), ch('N'), tuple(text('1'), ch('u'), text('2026-01-01 00:00:00+00'))]), rels);
    expect(plain).toEqual({ tag: 'update', relation: 16385, oldTuple: undefined, oldKind: undefined, newTuple: { values: { id: '1', updated_at: '2026-01-01 00:00:00+00' }, unchanged: ['status'] } });
    const keyChanged = parseMessage(Buffer.concat([ch('U'), i32(16385), ch('K'), tuple(text('1'), ch('n'), ch('n')), ch('N'), tuple(text('2'), text('x'), ch('n'))]), rels);
    expect(keyChanged).toMatchObject({ tag: 'update', oldKind: 'K', oldTuple: { values: { id: '1', status: null, updated_at: null } }, newTuple: { values: { id: '2', status: 'x', updated_at: null } } });
  });

  it('parses Delete (K and O) and Truncate', () => {
    expect(parseMessage(Buffer.concat([ch('D'), i32(16385), ch('K'), tuple(text('7'), ch('n'), ch('n'))]), rels)).toMatchObject({ tag: 'delete', oldKind: 'K', oldTuple: { values: { id: '7' } } });
    expect(parseMessage(Buffer.concat([ch('D'), i32(16385), ch('O'), tuple(text('7'), text('old'), ch('n'))]), rels)).toMatchObject({ tag: 'delete', oldKind: 'O', oldTuple: { values: { id: '7', status: 'old' } } });
    expect(parseMessage(Buffer.concat([ch('T'), i32(2), u8(1), i32(16385), i32(16390)]), rels)).toEqual({ tag: 'truncate', options: 1, relations: [16385, 16390] });
  });

  it('refuses what it cannot read: unknown relation, truncated data, unknown tags', () => {
    expect(() => parseMessage(Buffer.concat([ch('I'), i32(1), ch('N'), tuple(text('1'))]), rels)).toThrow(/before its Relation/);
    expect(() => parseMessage(Buffer.concat([ch('I'), i32(16385), ch('N'), i16(1), ch('t'), i32(10), Buffer.from('ab')]), rels)).toThrow(/truncated/);
    expect(() => parseMessage(ch('Z'), rels)).toThrow(/unknown message type/);
    expect(() => parseMessage(Buffer.concat([ch('I'), i32(16385), ch('N'), tuple(ch('x'))]), rels)).toThrow(/unknown tuple value kind/);
    expect(() => parseMessage(Buffer.concat([ch('I'), i32(16385), ch('N'), tuple(text('1'), text('2'), text('3'), text('4'))]), rels)).toThrow(/tuple of 4 columns/);
  });
});
