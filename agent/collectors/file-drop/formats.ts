/**
 * Pure, streaming readers for ERP file drops (CSV, TSV, JSON Lines).
 * Nothing here holds a whole file in memory: files can be gigabytes.
 */
import { createHash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { pipeline, type Readable } from 'node:stream';
import { parse, CsvError, type InfoRecord, type Options } from 'csv-parse';
import iconv from 'iconv-lite';
import { ErpEdgeError } from '../../../common/errors.js';

export type FileFormat = 'csv' | 'tsv' | 'jsonl';
export type FileEncoding = 'auto' | 'utf-8' | 'windows-1252';
export interface FormatOptions {
  format: FileFormat;
  encoding: FileEncoding;
  /** csv only; default ','. */
  delimiter?: string;
  /** Columns (JSON Lines: top-level properties) every row must carry, non-empty: the business key. */
  keyColumns?: readonly string[];
}
/** Options once 'auto' has been resolved (see fingerprintFile). */
export type ReadOptions = FormatOptions & { encoding: 'utf-8' | 'windows-1252' };
export interface FileRow {
  /** 1-based line where the record starts in the file. */
  line: number;
  fields: Record<string, unknown>;
}
export interface FileFingerprint {
  sha256: string;
  size: number;
  encoding: 'utf-8' | 'windows-1252';
}

/** One pass over the bytes: SHA-256 of the content and, for encoding 'auto', whether it is valid UTF-8 (else windows-1252). */
export async function fingerprintFile(path: string, encoding: FileEncoding): Promise<FileFingerprint> {
  const hash = createHash('sha256');
  // fatal: the first invalid sequence throws; stream: sequences may straddle chunks.
  const utf8 = encoding === 'auto' ? new TextDecoder('utf-8', { fatal: true }) : undefined;
  let validUtf8 = true;
  let size = 0;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
    if (utf8 && validUtf8) {
      try {
        utf8.decode(chunk, { stream: true });
      } catch {
        validUtf8 = false;
      }
    }
  }
  if (utf8 && validUtf8) {
    try {
      utf8.decode(); // flush: a truncated trailing sequence is invalid too
    } catch {
      validUtf8 = false;
    }
  }
  const resolved = encoding === 'auto' ? (validUtf8 ? 'utf-8' : 'windows-1252') : encoding;
  return { sha256: hash.digest('hex'), size, encoding: resolved };
}

/** Streams the records of a file, in order, in constant memory. Throws ErpEdgeError('ERP_FILE_MALFORMED', `line N: <problem>`, { line, reason }) on the first malformed record. */
export async function* readRows(path: string, opts: ReadOptions, startAfterRow = 0): AsyncGenerator<FileRow> {
  let index = 0;
  for await (const row of opts.format === 'jsonl' ? jsonlRows(path, opts) : delimitedRows(path, opts)) {
    if (opts.keyColumns) checkKey(row, opts.keyColumns);
    // Resume: skipped rows are still parsed, so a malformed one still fails the file.
    if (index++ >= startAfterRow) yield row;
  }
}

/** A row without its key cannot get a stable identity: the file is malformed for this config. */
function checkKey(row: FileRow, keyColumns: readonly string[]): void {
  for (const k of keyColumns) {
    const v = row.fields[k];
    if (v === undefined) throw malformed(row.line, `key column ${JSON.stringify(k)} is missing`);
    if (v === null || v === '' || typeof v === 'object') throw malformed(row.line, `key column ${JSON.stringify(k)} is ${v === '' ? 'empty' : 'not a plain value'}`);
  }
}

/** Parses the whole file without keeping rows: returns the row count, or throws the same malformed error. */
export async function validateFile(path: string, opts: ReadOptions): Promise<{ rows: number }> {
  let rows = 0;
  for await (const _ of readRows(path, opts)) rows++;
  return { rows };
}

function malformed(line: number, reason: string, cause?: unknown): ErpEdgeError {
  return new ErpEdgeError('ERP_FILE_MALFORMED', `line ${line}: ${reason}`, { line, reason }, { cause });
}

/** Opens the file, decoding windows-1252 to text; utf-8 stays bytes (csv-parse and readline decode it). */
function open(path: string, encoding: ReadOptions['encoding']): { file: ReadStream; out: Readable } {
  const file = createReadStream(path);
  if (encoding === 'utf-8') return { file, out: file };
  // pipeline forwards a file error (ENOENT...) to the last stream, which the caller iterates.
  const out = pipeline(file, iconv.decodeStream('windows-1252'), () => {}) as unknown as Readable;
  return { file, out };
}

/** Destroys the streams and waits for the fd to be closed, so the caller may move/delete the file straight after. */
async function close(file: ReadStream, ...others: Readable[]): Promise<void> {
  for (const s of others) s.destroy();
  file.destroy();
  // Not events.once: it would reject with the stream's error, masking the one we are throwing.
  if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
}

async function* delimitedRows(path: string, opts: ReadOptions): AsyncGenerator<FileRow> {
  const { file, out } = open(path, opts.encoding);
  // csv-parse's info.lines is unusable here (it counts a CRLF inside quotes as two lines), so track
  // lines ourselves: a record starts one past the previous record's end plus the blank lines skipped
  // since (info.empty_lines), and spans 1 + the '\n's in its values (record delimiters are '\n'/'\r\n'
  // and quoted values keep their bytes verbatim). on_record runs synchronously inside the parser, so
  // this stays right for an error even while the consumer lags behind.
  let prevEnd = 0;
  let prevEmpty = 0;
  let header: string[] | undefined;
  const startOf = (info: { empty_lines: number }) => prevEnd + 1 + (info.empty_lines - prevEmpty);
  const options: Options<FileRow | null, string[]> = {
    delimiter: opts.format === 'tsv' ? '\t' : (opts.delimiter ?? ','),
    bom: true,
    skip_empty_lines: true,
    record_delimiter: ['\r\n', '\n'], // explicit: auto-detection locks onto the first ending seen, breaking mixed files
    // columns stays false: the header is checked here, and csv-parse then enforces its field count.
    on_record: (record: string[], info: InfoRecord): FileRow | null => {
      const line = startOf(info);
      prevEnd = line + record.reduce((n, value) => n + countNewlines(value), 0);
      prevEmpty = info.empty_lines;
      if (header === undefined) {
        const seen = new Set<string>();
        for (const name of record) {
          if (name.trim() === '') throw malformed(line, 'empty column name in header');
          if (seen.has(name)) throw malformed(line, `duplicate column name ${JSON.stringify(name)} in header`);
          seen.add(name);
        }
        header = record;
        return null; // drop the header row
      }
      const fields: Record<string, unknown> = {};
      record.forEach((value, i) => (fields[header![i]!] = value));
      return { line, fields };
    },
  };
  const parser = parse(options as unknown as Options); // typings only offer generic records alongside `columns`
  const rows = pipeline(out, parser, () => {}) as unknown as AsyncIterable<FileRow>;
  try {
    yield* rows;
  } catch (err) {
    if (!(err instanceof CsvError)) throw err; // ours (ErpEdgeError) or I/O errors pass through
    const info = err as unknown as { empty_lines: number }; // CsvError carries the parser's info
    throw malformed(startOf(info), csvReason(err, header?.length), err);
  } finally {
    await close(file, out, parser);
  }
}

function countNewlines(value: string): number {
  let n = 0;
  for (let i = value.indexOf('\n'); i !== -1; i = value.indexOf('\n', i + 1)) n++;
  return n;
}

function csvReason(err: CsvError, columns: number | undefined): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'unclosed quote';
    case 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH':
      return `expected ${columns} fields as in the header, got ${(err['record'] as unknown[] | undefined)?.length}`;
    default:
      return err.message; // may quote csv-parse's own line count; the `line N:` prefix is the authoritative start
  }
}

async function* jsonlRows(path: string, opts: ReadOptions): AsyncGenerator<FileRow> {
  const { file, out } = open(path, opts.encoding);
  if (opts.encoding === 'utf-8') out.setEncoding('utf8'); // StringDecoder: multi-byte chars may straddle chunks
  const rl = createInterface({ input: out, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (let text of rl) {
      line++;
      if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw malformed(line, `invalid JSON: ${(err as Error).message}`, err);
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
        throw malformed(line, `expected a JSON object, got ${kind}`);
      }
      yield { line, fields: value as Record<string, unknown> };
    }
  } finally {
    rl.close();
    await close(file, out);
  }
}
