/**
 * A parser for PostgreSQL's `pgoutput` logical decoding messages, protocol version 1 (as
 * `pg_logical_slot_peek_binary_changes(slot, NULL, n, 'proto_version', '1', 'publication_names', p)`
 * returns them, one message per row). Pure: no driver, no I/O.
 *
 * Tuple values come in text format (every value is PostgreSQL's text output of it); a column sent
 * as 'u' (an unchanged TOASTed value, in an update's new tuple) is absent from `values` and named
 * in `unchanged`; 'n' is null.
 */

export interface RelationColumn {
  name: string;
  typeOid: number;
  typmod: number;
  /** Flag bit 1: part of the replica identity key. */
  isKey: boolean;
}

export interface RelationMessage {
  tag: 'relation';
  oid: number;
  schema: string;
  name: string;
  /** 'd' default (primary key), 'n' nothing, 'f' full, 'i' index. */
  replicaIdentity: string;
  columns: RelationColumn[];
}

export interface TupleData {
  /** Column name → text value or null; a column absent here was not sent (unchanged TOAST). */
  values: Record<string, string | null>;
  /** Columns sent as 'u': unchanged TOASTed values, not carried by the message. */
  unchanged: string[];
}

export type PgOutputMessage =
  | { tag: 'begin'; finalLsn: string; commitTime: bigint; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: string; endLsn: string; commitTime: bigint }
  | { tag: 'origin'; lsn: string; name: string }
  | RelationMessage
  | { tag: 'type'; oid: number; schema: string; name: string }
  | { tag: 'insert'; relation: number; newTuple: TupleData }
  | { tag: 'update'; relation: number; oldTuple?: TupleData | undefined; oldKind?: 'K' | 'O' | undefined; newTuple: TupleData }
  | { tag: 'delete'; relation: number; oldTuple: TupleData; oldKind: 'K' | 'O' }
  | { tag: 'truncate'; options: number; relations: number[] };

/** An LSN as PostgreSQL writes it: `16/B374D848` (hex, upper case, no leading zeros). */
export function formatLsn(v: bigint): string {
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** `16/B374D848` → 64-bit number (for comparing LSNs). */
export function parseLsn(s: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(s);
  if (!m) throw new Error(`not an LSN: ${JSON.stringify(s)}`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  byte(): number {
    this.need(1);
    return this.buf.readUInt8(this.pos++);
  }
  char(): string {
    return String.fromCharCode(this.byte());
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  lsn(): string {
    this.need(8);
    const v = this.buf.readBigUInt64BE(this.pos);
    this.pos += 8;
    return formatLsn(v);
  }
  /** A NUL-terminated string. */
  string(): string {
    const end = this.buf.indexOf(0, this.pos);
    if (end < 0) throw new Error('pgoutput: unterminated string');
    const s = this.buf.toString('utf8', this.pos, end);
    this.pos = end + 1;
    return s;
  }
  bytes(n: number): Buffer {
    this.need(n);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new Error(`pgoutput: message truncated (need ${n} bytes at ${this.pos} of ${this.buf.length})`);
  }
}

/**
 * One message. `relations` resolves column names of tuples (a Relation message always precedes
 * the first change of a relation in a decoding session; the caller keeps the cache and adds the
 * relations this returns).
 */
export function parseMessage(buf: Buffer, relations: ReadonlyMap<number, RelationMessage>): PgOutputMessage {
  const r = new Reader(buf);
  const tag = r.char();
  switch (tag) {
    case 'B':
      return { tag: 'begin', finalLsn: r.lsn(), commitTime: r.int64(), xid: r.uint32() };
    case 'C':
      return { tag: 'commit', flags: r.byte(), commitLsn: r.lsn(), endLsn: r.lsn(), commitTime: r.int64() };
    case 'O':
      return { tag: 'origin', lsn: r.lsn(), name: r.string() };
    case 'R': {
      const oid = r.uint32();
      const schema = r.string();
      const name = r.string();
      const replicaIdentity = r.char();
      const n = r.int16();
      const columns: RelationColumn[] = [];
      for (let i = 0; i < n; i++) {
        const flags = r.byte();
        columns.push({ name: r.string(), typeOid: r.uint32(), typmod: r.int32(), isKey: (flags & 1) === 1 });
      }
      return { tag: 'relation', oid, schema, name, replicaIdentity, columns };
    }
    case 'Y':
      return { tag: 'type', oid: r.uint32(), schema: r.string(), name: r.string() };
    case 'I': {
      const relation = r.uint32();
      const rel = known(relations, relation);
      const n = r.char();
      if (n !== 'N') throw new Error(`pgoutput: insert without a new tuple ('${n}')`);
      return { tag: 'insert', relation, newTuple: tuple(r, rel) };
    }
    case 'U': {
      const relation = r.uint32();
      const rel = known(relations, relation);
      let kind = r.char();
      let oldTuple: TupleData | undefined;
      let oldKind: 'K' | 'O' | undefined;
      if (kind === 'K' || kind === 'O') {
        oldKind = kind;
        oldTuple = tuple(r, rel);
        kind = r.char();
      }
      if (kind !== 'N') throw new Error(`pgoutput: update without a new tuple ('${kind}')`);
      return { tag: 'update', relation, oldTuple, oldKind, newTuple: tuple(r, rel) };
    }
    case 'D': {
      const relation = r.uint32();
      const rel = known(relations, relation);
      const kind = r.char();
      if (kind !== 'K' && kind !== 'O') throw new Error(`pgoutput: delete without an old tuple ('${kind}')`);
      return { tag: 'delete', relation, oldKind: kind, oldTuple: tuple(r, rel) };
    }
    case 'T': {
      const n = r.int32();
      const options = r.byte();
      const rels: number[] = [];
      for (let i = 0; i < n; i++) rels.push(r.uint32());
      return { tag: 'truncate', options, relations: rels };
    }
    default:
      throw new Error(`pgoutput: unknown message type '${tag}' (0x${buf[0]?.toString(16) ?? '??'})`);
  }
}

function known(relations: ReadonlyMap<number, RelationMessage>, oid: number): RelationMessage {
  const rel = relations.get(oid);
  if (!rel) throw new Error(`pgoutput: change for relation ${oid} before its Relation message`);
  return rel;
}

function tuple(r: Reader, rel: RelationMessage): TupleData {
  const n = r.int16();
  const values: Record<string, string | null> = {};
  const unchanged: string[] = [];
  for (let i = 0; i < n; i++) {
    const col = rel.columns[i];
    if (!col) throw new Error(`pgoutput: tuple of ${n} columns for relation ${rel.schema}.${rel.name} of ${rel.columns.length}`);
    const kind = r.char();
    if (kind === 'n') values[col.name] = null;
    else if (kind === 'u') unchanged.push(col.name);
    else if (kind === 't') values[col.name] = r.bytes(r.int32()).toString('utf8');
    else throw new Error(`pgoutput: unknown tuple value kind '${kind}'`);
  }
  return { values, unchanged };
}
