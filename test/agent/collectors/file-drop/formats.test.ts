import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fingerprintFile,
  readRows,
  validateFile,
  type FileRow,
  type ReadOptions,
} from '../../../../agent/collectors/file-drop/formats.js';
import { isErpEdgeError, type ErpEdgeError } from '../../../../common/errors.js';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'file-formats-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function write(content: string | Buffer, ext = 'csv'): string {
  const p = path.join(dir, `f${n++}.${ext}`);
  fs.writeFileSync(p, content);
  return p;
}

const CSV: ReadOptions = { format: 'csv', encoding: 'utf-8' };
const JSONL: ReadOptions = { format: 'jsonl', encoding: 'utf-8' };

async function collect(p: string, opts: ReadOptions, startAfterRow?: number): Promise<FileRow[]> {
  const rows: FileRow[] = [];
  for await (const row of readRows(p, opts, startAfterRow)) rows.push(row);
  return rows;
}

async function malformedError(p: string, opts: ReadOptions): Promise<ErpEdgeError> {
  const err: unknown = await validateFile(p, opts).then(
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

describe('CSV / TSV', () => {
  it('reads a basic CSV with the header as keys and 1-based start lines', async () => {
    const p = write('id,name,qty\n1,bolt,10\n2,nut,20\n');
    expect(await collect(p, CSV)).toEqual([
      { line: 2, fields: { id: '1', name: 'bolt', qty: '10' } },
      { line: 3, fields: { id: '2', name: 'nut', qty: '20' } },
    ]);
    expect(await validateFile(p, CSV)).toEqual({ rows: 2 });
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
    const fp = await fingerprintFile(p, 'auto');
    expect(fp.encoding).toBe('windows-1252');
    expect(await collect(p, { format: 'csv', encoding: fp.encoding })).toEqual([
      { line: 2, fields: { name: 'Müller', price: '5€' } },
    ]);
  });

  it('reads TSV (tab delimiter, quotes still honoured) and a custom CSV delimiter', async () => {
    const tsv = write('a\tb\n1\t"x\ty"\n2\t,\n', 'tsv');
    expect(await collect(tsv, { format: 'tsv', encoding: 'utf-8' })).toEqual([
      { line: 2, fields: { a: '1', b: 'x\ty' } },
      { line: 3, fields: { a: '2', b: ',' } },
    ]);
    const semi = write('a;b\n1;2,5\n');
    expect(await collect(semi, { ...CSV, delimiter: ';' })).toEqual([{ line: 2, fields: { a: '1', b: '2,5' } }]);
  });

  it('returns 0 rows for an empty or header-only file', async () => {
    expect(await validateFile(write(''), CSV)).toEqual({ rows: 0 });
    expect(await validateFile(write('a,b\r\n'), CSV)).toEqual({ rows: 0 });
    expect(await validateFile(write('a,b'), CSV)).toEqual({ rows: 0 });
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
    const err = await malformedError(write('a,b\n1,2\n\n3,"open\n4,5\n6,7\n'), CSV);
    expect(err.context).toEqual({ line: 4, reason: 'unclosed quote' });
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
      await expect(validateFile(missing, opts)).rejects.toMatchObject({ code: 'ENOENT' });
    }
    await expect(fingerprintFile(missing, 'auto')).rejects.toMatchObject({ code: 'ENOENT' });
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
    expect(await collect(p, CSV, 2)).toEqual([
      { line: 5, fields: { a: '3' } },
      { line: 7, fields: { a: '4' } },
    ]);
    expect(await collect(p, CSV, 4)).toEqual([]);
    expect(await collect(p, CSV, 10)).toEqual([]);
    const j = write('{"i":1}\n{"i":2}\n\n{"i":3}\n', 'jsonl');
    expect(await collect(j, JSONL, 1)).toEqual([
      { line: 2, fields: { i: 2 } },
      { line: 4, fields: { i: 3 } },
    ]);
  });

  it('still parses (and rejects) skipped records', async () => {
    const p = write('a,b\n1\n2,2\n');
    await expect(collect(p, CSV, 5)).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED', context: { line: 2 } });
  });
});

describe('fingerprintFile', () => {
  it('hashes the exact bytes and reports the size', async () => {
    const bytes = Buffer.from('a,b\r\n1,"x\ny"\r\n');
    const p = write(bytes);
    const fp = await fingerprintFile(p, 'auto');
    expect(fp).toEqual({
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.length,
      encoding: 'utf-8',
    });
  });

  it('detects UTF-8 (with BOM, and with a character split across read chunks)', async () => {
    const bom = write(Buffer.from('\ufeffname\nMüller\n'));
    expect((await fingerprintFile(bom, 'auto')).encoding).toBe('utf-8');
    // fs streams read 64 KiB chunks: put the 2-byte "ü" across the boundary
    const split = Buffer.concat([Buffer.alloc(64 * 1024 - 1, 0x61), Buffer.from('ü\n')]);
    expect((await fingerprintFile(write(split), 'auto')).encoding).toBe('utf-8');
    // a truncated sequence at the very end is not valid UTF-8
    const truncated = Buffer.concat([Buffer.from('abc'), Buffer.from([0xc3])]);
    expect((await fingerprintFile(write(truncated), 'auto')).encoding).toBe('windows-1252');
  });

  it('reports an explicit encoding as given', async () => {
    const p = write(Buffer.from([0x4d, 0xfc]));
    expect((await fingerprintFile(p, 'utf-8')).encoding).toBe('utf-8');
    expect((await fingerprintFile(write('plain'), 'windows-1252')).encoding).toBe('windows-1252');
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
    expect(maxGrowth).toBeLessThan(15 * 1024 * 1024);
    expect(maxGrowth).toBeLessThan(size / 2);
  }, 60_000);

  it('closes the file when the consumer breaks early', async () => {
    for (const [content, opts] of [
      ['a\n1\n2\n3\n', CSV],
      ['a\n1\n2\n3\n', { ...CSV, encoding: 'windows-1252' as const }],
      ['{"a":1}\n{"a":2}\n', JSONL],
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
      await expect(validateFile(p, opts)).rejects.toMatchObject({ code: 'ERP_FILE_MALFORMED' });
      expect(fdsOpenOn(p)).toBe(0);
    }
  });
});
