import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  readRows,
  scanFile,
  type FileRow,
  type FormatOptions,
  type ReadOptions,
} from '../../../../agent/collectors/file-drop/formats.js';
import { dialectOf, type FileDropConfig } from '../../../../agent/collectors/file-drop/schema.js';
import { isErpEdgeError, type ErpEdgeError } from '../../../../common/errors.js';
import { makeTempDir } from '../../../helpers/tmp.js';

let dir: string;
let cleanup: () => void;
let n = 0;
beforeAll(() => {
  ({ dir, cleanup } = makeTempDir('file-formats-'));
});
afterAll(() => cleanup());

function write(content: string | Buffer, ext = 'csv'): string {
  const p = path.join(dir, `f${n++}.${ext}`);
  fs.writeFileSync(p, content);
  return p;
}

const CSV: ReadOptions = { format: 'csv', encoding: 'utf-8' };
const TSV: ReadOptions = { format: 'tsv', encoding: 'utf-8' };
const JSONL: ReadOptions = { format: 'jsonl', encoding: 'utf-8' };
const AUTO_CSV: FormatOptions = { format: 'csv', encoding: 'auto' };
const AUTO_TSV: FormatOptions = { format: 'tsv', encoding: 'auto' };

/** Options with the dialect a config would give (schema.ts dialectOf). */
function withDialect<T extends FormatOptions>(
  opts: T,
  cfg: Partial<Pick<FileDropConfig, 'delimiter' | 'quote' | 'escape' | 'relax_quotes'>>,
): T {
  return { ...opts, dialect: dialectOf({ format: opts.format, relax_quotes: false, ...cfg }) };
}

async function collect(p: string, opts: ReadOptions, from?: { startAfterRow?: number; size?: number }): Promise<FileRow[]> {
  const rows: FileRow[] = [];
  for await (const row of readRows(p, opts, from)) rows.push(row);
  return rows;
}

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** scanFile's ERP_FILE_MALFORMED error; readRows must fail the same way. */
async function malformedError(p: string, opts: FormatOptions): Promise<ErpEdgeError> {
  const err = await failure(scanFile(p, opts));
  if (opts.encoding !== 'auto') {
    const viaRead = await failure(collect(p, opts as ReadOptions));
    expect(viaRead.message).toBe(err.message);
  }
  return err;
}

async function failure(promise: Promise<unknown>): Promise<ErpEdgeError> {
  const err: unknown = await promise.then(
    () => new Error('expected ERP_FILE_MALFORMED'),
    (e: unknown) => e,
  );
  if (!isErpEdgeError(err, 'ERP_FILE_MALFORMED')) throw err;
  return err;
}

/** Descriptors of this process that point at `p` (Linux). */
function fdsOpenOn(p: string): number {
  let count = 0;
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`) === p) count++;
    } catch {
      // the fd used by readdir itself is gone by now
    }
  }
  return count;
}

/** UTF-16 as Excel's "Unicode text" export writes it: BOM, then the text (tabs, CRLF). */
function utf16(text: string, order: 'le' | 'be', bom = true): Buffer {
  const le = Buffer.from((bom ? '\ufeff' : '') + text, 'utf16le');
  return order === 'le' ? le : le.swap16();
}

describe('CSV / TSV', () => {
  it('reads a basic CSV with the header as keys and 1-based start lines', async () => {
    const p = write('id,name,qty\n1,bolt,10\n2,nut,20\n');
    expect(await collect(p, CSV)).toEqual([
      { line: 2, fields: { id: '1', name: 'bolt', qty: '10' } },
      { line: 3, fields: { id: '2', name: 'nut', qty: '20' } },
    ]);
    expect((await scanFile(p, CSV)).rows).toBe(2);
  });

  it('strips a UTF-8 BOM from the first header name', async () => {
    const p = write(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('sku,name\nA1,Müller\n')]));
    expect(await collect(p, CSV)).toEqual([{ line: 2, fields: { sku: 'A1', name: 'Müller' } }]);
  });

  it('handles CRLF, mixed line endings and a last line without newline', async () => {
    const p = write('a,b\r\n1,2\r\n3,4\n5,6');
    expect(await collect(p, CSV)).toEqual([
      { line: 2, fields: { a: '1', b: '2' } },
      { line: 3, fields: { a: '3', b: '4' } },
      { line: 4, fields: { a: '5', b: '6' } },
    ]);
  });

  it('keeps quoted newlines, delimiters and doubled quotes; later records get their real start line', async () => {
    const p = write(
      'id,note\r\n' + // 1
        '1,"line one\r\n' + // 2
        '\r\n' + // 3 (blank line inside the quotes: part of the value)
        'has, comma and ""quotes"""\r\n' + // 4
        '\r\n' + // 5 blank, skipped
        '2,plain\r\n' + // 6
        '3,"a\nb\nc"\n' + // 7-9
        '4,last\n', // 10
    );
    expect(await collect(p, CSV)).toEqual([
      { line: 2, fields: { id: '1', note: 'line one\r\n\r\nhas, comma and "quotes"' } },
      { line: 6, fields: { id: '2', note: 'plain' } },
      { line: 7, fields: { id: '3', note: 'a\nb\nc' } },
      { line: 10, fields: { id: '4', note: 'last' } },
    ]);
  });

  it('detects Windows-1252 with auto and decodes it', async () => {
    // "Müller", "5€": 0xfc = ü, 0x80 = € (0x80 is a C1 control in Latin-1, so this proves 1252)
    const bytes = Buffer.concat([
      Buffer.from('name,price\n'),
      Buffer.from([0x4d, 0xfc, 0x6c, 0x6c, 0x65, 0x72]),
      Buffer.from(',5'),
      Buffer.from([0x80]),
      Buffer.from('\n'),
    ]);
    const p = write(bytes);
    const scan = await scanFile(p, AUTO_CSV);
    expect(scan.encoding).toBe('windows-1252');
    expect(await collect(p, { format: 'csv', encoding: scan.encoding })).toEqual([
      { line: 2, fields: { name: 'Müller', price: '5€' } },
    ]);
  });

  it('reads a custom CSV delimiter', async () => {
    const semi = write('a;b\n1;2,5\n');
    expect(await collect(semi, withDialect(CSV, { delimiter: ';' }))).toEqual([{ line: 2, fields: { a: '1', b: '2,5' } }]);
  });

  it('returns 0 rows for an empty or header-only file', async () => {
    for (const content of ['', 'a,b\r\n', 'a,b', '\n\n']) expect((await scanFile(write(content), CSV)).rows).toBe(0);
  });

  it('rejects a wrong field count with the exact start line', async () => {
    const p = write('a,b\n1,2\n"multi\nline",2\n\n\n3\n4,5\n');
    const err = await malformedError(p, CSV);
    expect(err.context.line).toBe(7);
    expect(err.message).toBe('line 7: expected 2 fields as in the header, got 1');
    // too many fields too, right after a multi-line record
    const err2 = await malformedError(write('a,b\n"x\ny",1\n1,2,3\n'), CSV);
    expect(err2.context).toEqual({ line: 4, reason: 'expected 2 fields as in the header, got 3' });
  });

  it('rejects an unclosed quote at the line where its record starts', async () => {
    const content = 'a,b\n1,2\n\n3,"open\n4,5\n6,7\n';
    const err = await malformedError(write(content), CSV);
    // the record runs to the end of the file: a writer may still be writing it
    expect(err.context).toEqual({ line: 4, reason: 'unclosed quote', unterminated: true, completeSize: content.length });
    expect(err.message).toBe('line 4: unclosed quote');
  });

  it('rejects duplicate and empty header names', async () => {
    const dup = await malformedError(write('\nsku,name,sku\n1,2,3\n'), CSV);
    expect(dup.context).toEqual({ line: 2, reason: 'duplicate column name "sku" in header' });
    const empty = await malformedError(write('sku,,qty\n1,2,3\n'), CSV);
    expect(empty.context).toEqual({ line: 1, reason: 'empty column name in header' });
  });

  it('yields the rows before a malformed one, then throws', async () => {
    const p = write('a\n1\n2\n"3\n');
    const seen: number[] = [];
    const err = await (async () => {
      for await (const row of readRows(p, CSV)) seen.push(row.line);
    })().catch((e: unknown) => e);
    expect(isErpEdgeError(err, 'ERP_FILE_MALFORMED')).toBe(true);
    expect((err as ErpEdgeError).context.line).toBe(4);
    expect(seen).toEqual([2, 3]);
  });

  it('propagates I/O errors such as ENOENT unchanged', async () => {
    const missing = path.join(dir, 'missing.csv');
    for (const opts of [CSV, { ...CSV, encoding: 'windows-1252' as const }, JSONL]) {
      await expect(scanFile(missing, opts)).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(collect(missing, opts)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await expect(scanFile(missing, AUTO_CSV)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('JSON Lines', () => {
  it('reads objects, skipping blank lines, with BOM and CRLF', async () => {
    const p = write('\ufeff{"sku":"A","qty":1}\r\n\r\n  \r\n{"sku":"B","nested":{"x":[1,2]}}\r\n', 'jsonl');
    expect(await collect(p, JSONL)).toEqual([
      { line: 1, fields: { sku: 'A', qty: 1 } },
      { line: 4, fields: { sku: 'B', nested: { x: [1, 2] } } },
    ]);
  });

  it('decodes Windows-1252 JSON Lines', async () => {
    const p = write(Buffer.concat([Buffer.from('{"n":"M'), Buffer.from([0xfc]), Buffer.from('ller"}\n')]), 'jsonl');
    expect(await collect(p, { format: 'jsonl', encoding: 'windows-1252' })).toEqual([
      { line: 1, fields: { n: 'Müller' } },
    ]);
  });

  it('names the line and the JSON.parse problem for a bad line', async () => {
    const err = await malformedError(write('{"a":1}\n\n{"a":2,}\n{"a":3}\n', 'jsonl'), JSONL);
    expect(err.context.line).toBe(3);
    expect(err.message).toMatch(/^line 3: invalid JSON: .+/);
    expect(err.message).toContain((() => { try { JSON.parse('{"a":2,}'); } catch (e) { return (e as Error).message; } return 'unreachable'; })());
  });

  it('rejects arrays, scalars and null', async () => {
    for (const [bad, kind] of [['[1,2]', 'an array'], ['42', 'number'], ['"s"', 'string'], ['null', 'null']] as const) {
      const err = await malformedError(write(`{"a":1}\n${bad}\n`, 'jsonl'), JSONL);
      expect(err.context).toEqual({ line: 2, reason: `expected a JSON object, got ${kind}` });
    }
  });
});

describe('startAfterRow', () => {
  it('resumes after N records with the original line numbers', async () => {
    const p = write('a\n1\n"2\n2"\n3\n\n4\n');
    expect((await collect(p, CSV)).map((r) => r.line)).toEqual([2, 3, 5, 7]);
    expect(await collect(p, CSV, { startAfterRow: 2 })).toEqual([
      { line: 5, fields: { a: '3' } },
      { line: 7, fields: { a: '4' } },
    ]);
    expect(await collect(p, CSV, { startAfterRow: 4 })).toEqual([]);
    expect(await collect(p, CSV, { startAfterRow: 10 })).toEqual([]);
    const j = write('{"i":1}\n{"i":2}\n\n{"i":3}\n', 'jsonl');
    expect(await collect(j, JSONL, { startAfterRow: 1 })).toEqual([
      { line: 2, fields: { i: 2 } },
      { line: 4, fields: { i: 3 } },
    ]);
  });

  it('still parses (and rejects) skipped records', async () => {
    const p = write('a,b\n1\n2,2\n');
    await expect(collect(p, CSV, { startAfterRow: 5 })).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED', context: { line: 2 } });
  });
});

describe('dialects', () => {
  it('reads TSV without quote processing: quotes round-trip exactly', async () => {
    const p = write('sku\tdesc\tnote\r\n1\tPipe 12" steel\t"quoted"\r\n2\ta""b\t"\r\n3\t"open\tx\r\n', 'tsv');
    expect(await collect(p, TSV)).toEqual([
      { line: 2, fields: { sku: '1', desc: 'Pipe 12" steel', note: '"quoted"' } },
      { line: 3, fields: { sku: '2', desc: 'a""b', note: '"' } },
      { line: 4, fields: { sku: '3', desc: '"open', note: 'x' } },
    ]);
    const scan = await scanFile(p, AUTO_TSV);
    expect(scan).toMatchObject({ rows: 3, encoding: 'utf-8' });
    // the same with the dialect a config gives, and a comma is just text
    expect((await collect(write('a\tb\n1,5\t"\n', 'tsv'), withDialect(TSV, {})))[0]!.fields).toEqual({ a: '1,5', b: '"' });
  });

  it("reads quoted TSV with quote: '\"' (tabs, newlines and doubled quotes inside quotes)", async () => {
    const p = write('a\tb\n1\t"x\ty"\n2\t"multi\nline"\n3\t"say ""hi"""\n', 'tsv');
    expect(await collect(p, withDialect(TSV, { quote: '"' }))).toEqual([
      { line: 2, fields: { a: '1', b: 'x\ty' } },
      { line: 3, fields: { a: '2', b: 'multi\nline' } },
      { line: 5, fields: { a: '3', b: 'say "hi"' } },
    ]);
    // a stray quote in quoted TSV: the reason says how to read it
    const err = await malformedError(write('a\tb\n1\tPipe 12" steel\n', 'tsv'), withDialect(TSV, { quote: '"' }));
    expect(err.context.line).toBe(2);
    expect(err.context.reason).toContain('column "b"');
    expect(err.context.reason).toContain('quote: none');
  });

  it('CSV with quote: none and a custom escape', async () => {
    expect(await collect(write('a,b\n"x",y"\n'), withDialect(CSV, { quote: 'none' }))).toEqual([{ line: 2, fields: { a: '"x"', b: 'y"' } }]);
    expect(await collect(write('a,b\n1,"x\\"y"\n'), withDialect(CSV, { escape: '\\' }))).toEqual([{ line: 2, fields: { a: '1', b: 'x"y' } }]);
  });

  // csv-spectrum's location_coordinates case (csvs/location_coordinates.csv, its bytes verbatim):
  // quotes (seconds of arc) inside unquoted values.
  const LOCATION_COORDINATES =
    'Contact Phone Number,Location Coordinates,Cities,Counties\n' +
    '2095257564,37\ufffd36\'37.8"N 121\ufffd2\'17.9"W,Modesto,Stanislaus';

  it('reads csv-spectrum location_coordinates with relax_quotes: true', async () => {
    const p = write(LOCATION_COORDINATES);
    expect(await collect(p, withDialect(CSV, { relax_quotes: true }))).toEqual([
      {
        line: 2,
        fields: {
          'Contact Phone Number': '2095257564',
          'Location Coordinates': '37\ufffd36\'37.8"N 121\ufffd2\'17.9"W',
          Cities: 'Modesto',
          Counties: 'Stanislaus',
        },
      },
    ]);
    expect(await scanFile(p, withDialect(AUTO_CSV, { relax_quotes: true }))).toMatchObject({ rows: 1, encoding: 'utf-8', endsWithNewline: false });
  });

  it('rejects csv-spectrum location_coordinates without relax_quotes, saying so', async () => {
    const err = await malformedError(write(LOCATION_COORDINATES), CSV);
    expect(err.context).toMatchObject({
      line: 2,
      reason: 'quote inside the unquoted value of column "Location Coordinates"; set relax_quotes: true to keep such quotes as text',
    });
    expect(err.message).toBe(`line 2: ${err.context.reason as string}`);
    // the file has no final line feed, and the bad record is its last: flagged as possibly unfinished
    expect(err.context).toMatchObject({ unterminated: true, completeSize: LOCATION_COORDINATES.indexOf('\n') + 1 });
    // with one, it is not
    const terminated = await malformedError(write(`${LOCATION_COORDINATES}\n`), CSV);
    expect(terminated.context.unterminated).toBeUndefined();
  });

  it('reports a quote error at its record start line, after multi-line records and blank lines', async () => {
    // line 6 fails; nothing after it has a quote, so csv-parse would read the rest as one value
    const p = write('a,b\n"x\ny",1\n\n3,4\n5,"6"x\n7,8\n9,10\n');
    const err = await malformedError(p, CSV);
    expect(err.context).toEqual({ line: 6, reason: 'text after the closing quote of column "b"; set relax_quotes: true to keep it as text' });
    const rows: number[] = [];
    await expect(
      (async () => {
        for await (const row of readRows(p, CSV)) rows.push(row.line);
      })(),
    ).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED' });
    expect(rows).toEqual([2, 5]);
    // more records after the bad one in the same chunk: still its line
    const later = await malformedError(write('a,b\n1,2"x\n3,4\n5,6\n'), CSV);
    expect(later.context.line).toBe(2);
    // in the header
    const header = await malformedError(write('\na,b"\n1,2\n'), CSV);
    expect(header.context).toMatchObject({ line: 2, reason: expect.stringContaining('field 2') });
  });

  it('checks key columns: present and non-empty', async () => {
    const keyed: ReadOptions = { ...CSV, keyColumns: ['sku'] };
    expect(await collect(write('sku,qty\nA,1\n'), keyed)).toEqual([{ line: 2, fields: { sku: 'A', qty: '1' } }]);
    expect((await malformedError(write('sku,qty\nA,1\n,2\n'), keyed)).context).toEqual({ line: 3, reason: 'key column "sku" is empty' });
    expect((await malformedError(write('id,qty\n\n1,2\n'), keyed)).context).toEqual({ line: 3, reason: 'key column "sku" is missing' });
    expect((await scanFile(write('id,qty\n'), keyed)).rows).toBe(0); // no row lacks it
  });
});

describe('encodings', () => {
  const EXCEL = 'Kunde\tStadt\tArtikel\tPreis\r\nMüller\tŁódź\tRohr 12" Stahl\t5 €\r\n東京商事\t東京\t📦 Box\t¥1\r\n';
  const EXCEL_ROWS: FileRow[] = [
    { line: 2, fields: { Kunde: 'Müller', Stadt: 'Łódź', Artikel: 'Rohr 12" Stahl', Preis: '5 €' } },
    { line: 3, fields: { Kunde: '東京商事', Stadt: '東京', Artikel: '📦 Box', Preis: '¥1' } },
  ];

  it("reads Excel's Unicode text (UTF-16LE with BOM, tabs, CRLF) under auto", async () => {
    const bytes = utf16(EXCEL, 'le');
    const p = write(bytes, 'txt');
    const scan = await scanFile(p, AUTO_TSV);
    expect(scan).toEqual({ sha256: sha256(bytes), size: bytes.length, encoding: 'utf-16le', rows: 2, endsWithNewline: true });
    expect(await collect(p, { ...TSV, encoding: scan.encoding })).toEqual(EXCEL_ROWS);
    // explicit, too
    expect((await scanFile(p, { ...TSV, encoding: 'utf-16le' })).rows).toBe(2);
  });

  it('reads UTF-16BE with BOM under auto and explicitly', async () => {
    const p = write(utf16(EXCEL, 'be'), 'txt');
    const scan = await scanFile(p, AUTO_TSV);
    expect(scan).toMatchObject({ encoding: 'utf-16be', rows: 2, endsWithNewline: true });
    expect(await collect(p, { ...TSV, encoding: 'utf-16be' })).toEqual(EXCEL_ROWS);
  });

  it('reads explicit UTF-16LE without a BOM, and JSON Lines in UTF-16', async () => {
    expect(await collect(write(utf16(EXCEL, 'le', false)), { ...TSV, encoding: 'utf-16le' })).toEqual(EXCEL_ROWS);
    const j = write(utf16('{"n":"Müller"}\r\n{"n":"東京"}\r\n', 'be'), 'jsonl');
    expect((await scanFile(j, { format: 'jsonl', encoding: 'auto' })).encoding).toBe('utf-16be');
    expect(await collect(j, { ...JSONL, encoding: 'utf-16be' })).toEqual([
      { line: 1, fields: { n: 'Müller' } },
      { line: 2, fields: { n: '東京' } },
    ]);
  });

  it('decodes UTF-16 characters and surrogate pairs that straddle read chunks', async () => {
    // 64 KiB reads: put the 4 bytes of a surrogate pair across the first boundary
    const filler = 'x'.repeat((64 * 1024 - 2 - 'a\n'.length * 2 - 2) / 2);
    const bytes = utf16(`a\n${filler}📦\nb\n`, 'le');
    expect(bytes.subarray(64 * 1024 - 2, 64 * 1024 + 2).toString('utf16le')).toBe('📦');
    const p = write(bytes);
    expect(await collect(p, { ...CSV, encoding: 'utf-16le' })).toEqual([
      { line: 2, fields: { a: `${filler}📦` } },
      { line: 3, fields: { a: 'b' } },
    ]);
  });

  it('rejects a UTF-16 file with an odd number of bytes, naming the encoding', async () => {
    const p = write(Buffer.concat([utf16(EXCEL, 'le'), Buffer.from([0x41])]));
    const err = await malformedError(p, AUTO_TSV);
    expect(err.context.line).toBeUndefined();
    expect(err.context.reason).toMatch(/^UTF-16LE file with an odd number of bytes/);
    expect(err.message).toBe(err.context.reason);
    await malformedError(p, { ...TSV, encoding: 'utf-16le' });
  });

  it('rejects an unpaired surrogate in UTF-16', async () => {
    const bytes = Buffer.concat([utf16('a\n', 'le'), Buffer.from([0x3d, 0xd8]), utf16('b\n', 'le', false)]); // U+D83D then 'b'
    const err = await malformedError(write(bytes), { ...CSV, encoding: 'utf-16le' });
    expect(err.context.reason).toMatch(/^not valid UTF-16LE: an unpaired surrogate/);
  });

  it('rejects BOM-less UTF-16 read as UTF-8 or windows-1252, naming the fix', async () => {
    for (const [order, fix] of [['le', 'utf-16le'], ['be', 'utf-16be']] as const) {
      const p = write(utf16(EXCEL, order, false), 'txt');
      for (const encoding of ['auto', 'utf-8', 'windows-1252'] as const) {
        const err = await malformedError(p, { ...TSV, encoding });
        expect(err.context.reason).toBe(`looks like UTF-16 without a byte-order mark (NUL bytes in most positions); set encoding: ${fix}`);
      }
    }
  });

  it('rejects a BOM that contradicts the configured encoding', async () => {
    const err = await malformedError(write(utf16(EXCEL, 'le')), TSV);
    expect(err.context.reason).toBe('starts with a UTF-16LE byte-order mark, but encoding is utf-8; set encoding: utf-16le or auto');
    const bom8 = await malformedError(write('\ufeffa\n1\n'), { ...CSV, encoding: 'windows-1252' });
    expect(bom8.context.reason).toContain('UTF-8 byte-order mark');
  });

  it('rejects windows-1252 bytes read as explicit utf-8, naming the byte and the fix', async () => {
    const p = write(Buffer.concat([Buffer.from('name\nM'), Buffer.from([0xfc]), Buffer.from('ller\n')]));
    const err = await malformedError(p, CSV);
    expect(err.context).toEqual({ reason: 'not valid UTF-8 (byte 0xFC at offset 6); set encoding: windows-1252 or auto' });
    // far into the file, after a character split across read chunks: the offset is still the file's
    const prefix = Buffer.concat([Buffer.from('name\n'), Buffer.alloc(64 * 1024 - 6, 0x61), Buffer.from('é')]);
    const late = write(Buffer.concat([prefix, Buffer.from('\nx'), Buffer.from([0x80]), Buffer.from('\n')]));
    expect((await malformedError(late, CSV)).context.reason).toBe(`not valid UTF-8 (byte 0x80 at offset ${prefix.length + 2}); set encoding: windows-1252 or auto`);
    // a UTF-8 BOM then invalid bytes: no setting reads that
    const bom = await malformedError(write(Buffer.concat([Buffer.from('\ufeffa\n'), Buffer.from([0xfc, 0x0a])])), AUTO_CSV);
    expect(bom.context.reason).toBe('not valid UTF-8 (byte 0xFC at offset 5) although it starts with a UTF-8 byte-order mark');
  });

  it('falls back to windows-1252 under auto, also when the invalid byte comes after valid non-ASCII UTF-8', async () => {
    // "Ã©" is valid UTF-8 (é) as well as windows-1252 text; the 0xFC (ü) far later is only windows-1252
    const bytes = Buffer.concat([
      Buffer.from('name\n'),
      Buffer.from([0xc3, 0xa9, 0x0a]),
      Buffer.from(`${'z'.repeat(100)}\n`.repeat(1000)),
      Buffer.from([0x4d, 0xfc, 0x0a]),
    ]);
    const p = write(bytes);
    const scan = await scanFile(p, AUTO_CSV);
    expect(scan).toEqual({ sha256: sha256(bytes), size: bytes.length, encoding: 'windows-1252', rows: 1002, endsWithNewline: true });
    expect(fdsOpenOn(p)).toBe(0);
    const rows = await collect(p, { ...CSV, encoding: scan.encoding });
    expect(rows[0]).toEqual({ line: 2, fields: { name: 'Ã©' } });
    expect(rows.at(-1)).toEqual({ line: 1003, fields: { name: 'Mü' } });
  });

  it('under auto, does not let a record error found while guessing UTF-8 decide the encoding', async () => {
    // windows-1252 "Ã¤" (C3 A4) reads as UTF-8 "ä": the key column seems missing until the 0xFC shows
    // the file is not UTF-8
    const bytes = Buffer.concat([
      Buffer.from([0x69, 0x64, 0x2c, 0xc3, 0xa4, 0x0a]), // id,Ã¤
      Buffer.from(`1,${'z'.repeat(100)}\n`.repeat(1000)),
      Buffer.from([0x32, 0x2c, 0xfc, 0x0a]),
    ]);
    const keyed: FormatOptions = { ...AUTO_CSV, keyColumns: ['Ã¤'] };
    expect(await scanFile(write(bytes), keyed)).toMatchObject({ encoding: 'windows-1252', rows: 1001 });
    // the same error in a file that is UTF-8 throughout stands
    const utf8 = write(bytes.subarray(0, bytes.length - 4));
    expect((await malformedError(utf8, keyed)).context).toEqual({ line: 2, reason: 'key column "Ã¤" is missing' });
    expect(fdsOpenOn(utf8)).toBe(0);
  });

  it('rejects a malformed windows-1252 file under auto with the record reason', async () => {
    const bytes = Buffer.concat([Buffer.from('a,b\n1,2\n'), Buffer.from([0xfc]), Buffer.from('\n')]);
    expect((await malformedError(write(bytes), AUTO_CSV)).context).toEqual({ line: 3, reason: 'expected 2 fields as in the header, got 1' });
  });
});

describe('scanFile', () => {
  it('hashes the exact bytes and reports the size', async () => {
    const bytes = Buffer.from('a,b\r\n1,"x\ny"\r\n');
    const p = write(bytes);
    expect(await scanFile(p, AUTO_CSV)).toEqual({
      sha256: sha256(bytes),
      size: bytes.length,
      encoding: 'utf-8',
      rows: 1,
      endsWithNewline: true,
    });
    expect(await scanFile(write(''), AUTO_CSV)).toEqual({ sha256: sha256(''), size: 0, encoding: 'utf-8', rows: 0, endsWithNewline: false });
  });

  it('counts data records: header and blank lines excluded, multi-line records once', async () => {
    expect((await scanFile(write('a,b\n\n1,"x\n\ny"\n\n2,3\n'), CSV)).rows).toBe(2);
    expect((await scanFile(write('\n{"a":1}\n  \n{"a":2}\n{"a":3}', 'jsonl'), JSONL)).rows).toBe(3);
  });

  it('tells whether the content ends with a line feed (UTF-8, UTF-16LE, UTF-16BE)', async () => {
    const cases: [Buffer | string, FormatOptions, boolean][] = [
      ['a\n1\n', AUTO_CSV, true],
      ['a\r\n1\r\n', AUTO_CSV, true],
      ['a\n1', AUTO_CSV, false],
      ['a\n1\r', AUTO_CSV, false],
      ['\n', AUTO_CSV, true],
      ['', AUTO_CSV, false],
      [utf16('a\r\n1\r\n', 'le'), AUTO_CSV, true],
      [utf16('a\r\n1', 'le'), AUTO_CSV, false],
      [utf16('a\r\n\u0a0a', 'le'), AUTO_CSV, false], // bytes 0A 0A: not a line feed
      [utf16('', 'le'), AUTO_CSV, false], // the BOM alone
      [utf16('a\n1\n', 'be'), AUTO_CSV, true],
      [utf16('a\n1', 'be'), AUTO_CSV, false],
      [utf16('{"a":1}\n', 'le'), { format: 'jsonl', encoding: 'auto' }, true],
    ];
    for (const [content, opts, expected] of cases) {
      expect((await scanFile(write(content), opts)).endsWithNewline, JSON.stringify(content.toString())).toBe(expected);
    }
  });

  it('detects UTF-8 (with BOM, and with a character split across read chunks)', async () => {
    const bom = write(Buffer.from('\ufeffname\nMüller\n'));
    expect((await scanFile(bom, AUTO_CSV)).encoding).toBe('utf-8');
    expect(await collect(bom, CSV)).toEqual([{ line: 2, fields: { name: 'Müller' } }]);
    // fs streams read 64 KiB chunks: put the 2-byte "ü" across the boundary
    const split = Buffer.concat([Buffer.from('a\n'), Buffer.alloc(64 * 1024 - 3, 0x61), Buffer.from('ü\n')]);
    expect(await scanFile(write(split), AUTO_CSV)).toMatchObject({ encoding: 'utf-8', rows: 1 });
    // a sequence cut at the very end: no proof of windows-1252 (a writer may be mid-character), but
    // an error flagged unterminated, under auto and explicit utf-8 alike
    const truncated = write(Buffer.concat([Buffer.from('abc\nM'), Buffer.from([0xc3])]));
    for (const opts of [AUTO_CSV, CSV]) {
      expect((await malformedError(truncated, opts)).context).toEqual({
        reason: 'ends inside a UTF-8 character (byte 0xC3 at offset 5): cut short, or not UTF-8 (then set encoding: windows-1252)',
        unterminated: true,
        completeSize: 4,
      });
    }
    // also after other non-ASCII text
    const later = write(Buffer.concat([Buffer.from('abc\nMü\nM'), Buffer.from([0xc3])]));
    expect((await malformedError(later, AUTO_CSV)).context).toMatchObject({ unterminated: true, completeSize: 8 });
  });

  it('reports an explicit encoding as given', async () => {
    expect((await scanFile(write('plain\n'), { ...CSV, encoding: 'windows-1252' })).encoding).toBe('windows-1252');
    expect((await scanFile(write('plain\n'), CSV)).encoding).toBe('utf-8');
  });
});

describe('the unterminated end of a file (a writer may still be writing it)', () => {
  it('a valid last line without line feed is a row; endsWithNewline tells the caller to hold it back', async () => {
    const p = write('id,sku,qty\n1,A,10\n2,B,2'); // "2,B,2" may be the start of "2,B,20"
    expect(await scanFile(p, CSV)).toMatchObject({ rows: 2, endsWithNewline: false });
  });

  it('flags an error in the last record when no line feed ends it, with the size of the complete lines', async () => {
    const complete = 'id,sku,qty\n1,A,10\n';
    const p = write(`${complete}2,B`);
    const err = await malformedError(p, CSV);
    expect(err.context).toEqual({ line: 3, reason: 'expected 3 fields as in the header, got 2', unterminated: true, completeSize: complete.length });
    // bounded to the complete lines, the same file reads clean
    expect(await scanFile(p, CSV, complete.length)).toMatchObject({ rows: 1, endsWithNewline: true });
    expect(await collect(p, CSV, { size: complete.length })).toEqual([{ line: 2, fields: { id: '1', sku: 'A', qty: '10' } }]);
    // a multi-line record cut before its last field; a header cut short; JSON Lines
    const multiLine = write('a,b,c\n1,"x\ny"');
    const multi = await malformedError(multiLine, CSV);
    expect(multi.context).toMatchObject({ line: 2, unterminated: true, completeSize: 'a,b,c\n1,"x\n'.length });
    // complete lines, not records: that cut is inside a quoted value, and says so again
    const inQuote = await failure(scanFile(multiLine, CSV, 'a,b,c\n1,"x\n'.length));
    expect(inQuote.context).toEqual({ line: 2, reason: 'unclosed quote', unterminated: true, completeSize: 'a,b,c\n1,"x\n'.length });
    expect((await malformedError(write('a,b,a'), CSV)).context).toMatchObject({ line: 1, unterminated: true, completeSize: 0 });
    const j = await malformedError(write('{"a":1}\n{"a":', 'jsonl'), JSONL);
    expect(j.context).toMatchObject({ line: 2, unterminated: true, completeSize: 8 });
  });

  it('does not flag an error that a line feed ends or that later records follow', async () => {
    for (const content of ['id,sku,qty\n1,A\n', 'id,sku,qty\n1,A\n2,B,3', 'id,sku,qty\n1,A\n\n', 'a,b\n1,2"x\n3,4']) {
      const err = await malformedError(write(content), CSV);
      expect(err.context.unterminated, content).toBeUndefined();
      expect(err.context.completeSize, content).toBeUndefined();
    }
    expect((await malformedError(write('{"a":1}\n{"a":\n', 'jsonl'), JSONL)).context.unterminated).toBeUndefined();
    // an encoding error inside the content
    expect((await malformedError(write(Buffer.from([0x61, 0x0a, 0xfc, 0x0a, 0x62])), CSV)).context.unterminated).toBeUndefined();
  });

  it('flags UTF-16 cut inside a code unit, with the complete lines in UTF-16 bytes', async () => {
    const complete = utf16('a\r\n1\r\n', 'le');
    const p = write(Buffer.concat([complete, Buffer.from('2', 'utf16le').subarray(0, 1)]));
    expect((await malformedError(p, AUTO_CSV)).context).toMatchObject({ unterminated: true, completeSize: complete.length });
    const be = utf16('a\n1\n', 'be');
    const cutBe = write(Buffer.concat([be, Buffer.from([0x00])]));
    expect((await malformedError(cutBe, AUTO_CSV)).context).toMatchObject({ unterminated: true, completeSize: be.length });
  });
});

describe('size bound', () => {
  it('scanFile and readRows read only the first `size` bytes of a file still growing', async () => {
    const first = 'id,name\n1,Müller\n2,b\n';
    const p = write(first);
    const size = fs.statSync(p).size;
    fs.appendFileSync(p, '3,c\n4,d\n');
    expect(await scanFile(p, AUTO_CSV, size)).toEqual({ sha256: sha256(first), size, encoding: 'utf-8', rows: 2, endsWithNewline: true });
    expect(await collect(p, CSV, { size })).toEqual([
      { line: 2, fields: { id: '1', name: 'Müller' } },
      { line: 3, fields: { id: '2', name: 'b' } },
    ]);
    expect(await collect(p, CSV, { size, startAfterRow: 1 })).toEqual([{ line: 3, fields: { id: '2', name: 'b' } }]);
    // without a size: the whole file as it is now
    expect((await scanFile(p, AUTO_CSV)).rows).toBe(4);
  });

  it('a bound inside a row leaves it unterminated; a bound of 0 reads nothing', async () => {
    const p = write('a,b\n1,2\n3,4\n');
    const scan = await scanFile(p, CSV, 10); // 'a,b\n1,2\n3,'
    expect(scan).toMatchObject({ size: 10, rows: 2, endsWithNewline: false, sha256: sha256('a,b\n1,2\n3,') });
    expect((await collect(p, CSV, { size: 10 })).at(-1)).toEqual({ line: 3, fields: { a: '3', b: '' } });
    expect(await scanFile(p, CSV, 0)).toEqual({ sha256: sha256(''), size: 0, encoding: 'utf-8', rows: 0, endsWithNewline: false });
    expect(await collect(p, CSV, { size: 0 })).toEqual([]);
    expect(fdsOpenOn(p)).toBe(0);
  });

  it('bounds UTF-16 the same way (the bound is in bytes)', async () => {
    const first = utf16('a\r\n1\r\n', 'le');
    const p = write(first);
    fs.appendFileSync(p, Buffer.from('2\r\n', 'utf16le'));
    expect(await scanFile(p, AUTO_CSV, first.length)).toMatchObject({ encoding: 'utf-16le', rows: 1, endsWithNewline: true, sha256: sha256(first) });
    expect(await collect(p, { ...CSV, encoding: 'utf-16le' }, { size: first.length })).toEqual([{ line: 2, fields: { a: '1' } }]);
  });
});

describe('resources', () => {
  it('streams a ~20 MB CSV with bounded heap growth', async () => {
    const p = path.join(dir, 'big.csv');
    const fd = fs.openSync(p, 'w');
    fs.writeSync(fd, 'id,sku,description,qty\n');
    const rowCount = 200_000;
    for (let i = 0; i < rowCount; i += 1000) {
      let chunk = '';
      for (let j = i; j < i + 1000; j++) chunk += `${j},SKU-${j},"a fairly long description, ${'x'.repeat(60)}",${j % 97}\n`;
      fs.writeSync(fd, chunk);
    }
    fs.closeSync(fd);
    const size = fs.statSync(p).size;
    expect(size).toBeGreaterThan(18 * 1024 * 1024);

    // Measure what is retained, not garbage awaiting collection: force a GC before each sample.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const retained = () => {
      gc();
      return process.memoryUsage().heapUsed;
    };
    const base = retained();
    let maxGrowth = 0;
    let rows = 0;
    let lastLine = 0;
    for await (const row of readRows(p, CSV)) {
      if (++rows % 20_000 === 0) maxGrowth = Math.max(maxGrowth, retained() - base);
      lastLine = row.line;
    }
    expect(rows).toBe(rowCount);
    expect(lastLine).toBe(rowCount + 1);
    expect((await scanFile(p, AUTO_CSV)).rows).toBe(rowCount);
    expect(maxGrowth).toBeLessThan(15 * 1024 * 1024);
    expect(maxGrowth).toBeLessThan(size / 2);
  }, 60_000);

  it('closes the file when the consumer breaks early', async () => {
    // Larger than one 64 KiB read, so the file is still open when the first row comes out.
    const csv = 'a\n' + '1\n'.repeat(100_000);
    for (const [content, opts] of [
      [csv, CSV],
      [csv, { ...CSV, encoding: 'windows-1252' as const }],
      [utf16(csv, 'le'), { ...CSV, encoding: 'utf-16le' as const }],
      ['{"a":1}\n'.repeat(30_000), JSONL],
    ] as const) {
      const p = write(content);
      expect(fdsOpenOn(p)).toBe(0);
      let openDuring = -1;
      for await (const _row of readRows(p, opts)) {
        openDuring = fdsOpenOn(p);
        break;
      }
      expect(openDuring).toBe(1); // the check can see an open file...
      expect(fdsOpenOn(p)).toBe(0); // ...and it is closed once the loop has exited
      fs.rmSync(p);
    }
  });

  it('closes the file when a malformed record throws', async () => {
    for (const [content, opts] of [
      ['a,b\n1\n2,3\n', CSV],
      ['{"a":1}\nnope\n{"a":2}\n', JSONL],
    ] as const) {
      const p = write(content);
      await expect(scanFile(p, opts)).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED' });
      expect(fdsOpenOn(p)).toBe(0);
      await expect(collect(p, opts)).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED' });
      expect(fdsOpenOn(p)).toBe(0);
    }
  });
});

describe('fuzzed files (#12 item 6)', () => {
  const VALID: Record<'csv' | 'tsv' | 'jsonl', string> = {
    csv: 'order,sku,qty,note\n1001,A-1,2,"plain"\n1002,B-7,1,"with, comma"\n1003,C-9,5,"two\nlines"\n1004,D-1,3,"quote "" inside"\n',
    tsv: 'order\tsku\tqty\n1001\tA-1\t2\n1002\tB-7\t1\n1003\tÄ-9\t5\n',
    jsonl: '{"order":1001,"sku":"A-1","qty":2}\n{"order":1002,"sku":"B-7","lines":[{"n":1}]}\n\n{"order":1003,"note":"é"}\n',
  };
  /** Damage as files get it: bytes dropped, inserted (quotes, delimiters, line ends, invalid UTF-8, NUL), cut, repeated. */
  const damage = fc.tuple(
    fc.constantFrom('delete', 'insert', 'truncate', 'repeat'),
    fc.nat(),
    fc.array(fc.constantFrom(0x22, 0x2c, 0x09, 0x0a, 0x0d, 0x7b, 0x7d, 0x5c, 0x00, 0xff, 0xc3, 0x80, 0xfe, 0xef, 0xbb, 0xbf), { minLength: 1, maxLength: 4 }),
  );
  function applyDamage(b: Buffer, [kind, pos, bytes]: [string, number, number[]]): Buffer {
    const at = pos % (b.length + 1);
    if (kind === 'delete') return Buffer.concat([b.subarray(0, at), b.subarray(at + bytes.length)]);
    if (kind === 'insert') return Buffer.concat([b.subarray(0, at), Buffer.from(bytes), b.subarray(at)]);
    if (kind === 'truncate') return b.subarray(0, at);
    return Buffer.concat([b, b.subarray(at)]).subarray(0, 8_192);
  }
  const content = (format: 'csv' | 'tsv' | 'jsonl'): fc.Arbitrary<Buffer> =>
    fc.oneof<fc.Arbitrary<Buffer>[]>(
      fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
      fc.array(damage, { minLength: 1, maxLength: 4 }).map((ds) => ds.reduce<Buffer>((b, d) => applyDamage(b, d), Buffer.from(VALID[format]))),
    );

  for (const format of ['csv', 'tsv', 'jsonl'] as const) {
    it(`${format}: random and damaged files are read or refused with ERP_FILE_MALFORMED, never another throw; a file read yields exactly the rows its scan counted`, async () => {
      const seen = { read: 0, refused: 0 };
      await fc.assert(
        fc.asyncProperty(content(format), fc.constantFrom<FormatOptions['encoding']>('auto', 'utf-8', 'windows-1252'), async (bytes, encoding) => {
          const p = write(bytes, format);
          let scan: Awaited<ReturnType<typeof scanFile>>;
          try {
            scan = await scanFile(p, { format, encoding });
          } catch (err) {
            expect(isErpEdgeError(err, 'ERP_FILE_MALFORMED'), String(err)).toBe(true);
            expect((err as ErpEdgeError).message.length).toBeGreaterThan(0);
            seen.refused++;
            return;
          }
          let n = 0;
          for await (const row of readRows(p, { format, encoding: scan.encoding })) {
            expect(row.line).toBeGreaterThan(0);
            n++;
          }
          expect(n).toBe(scan.rows);
          expect(scan.size).toBe(bytes.length);
          seen.read++;
        }),
        { numRuns: 200, seed: 12_006 },
      );
      // Both outcomes occurred: the generator reaches malformed files and readable ones.
      expect(seen.read).toBeGreaterThan(0);
      expect(seen.refused).toBeGreaterThan(0);
    });
  }
});

