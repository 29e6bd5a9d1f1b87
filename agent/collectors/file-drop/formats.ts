/**
 * Pure, streaming readers for ERP file drops (CSV, TSV, JSON Lines).
 * Nothing here holds a whole file in memory: files can be gigabytes.
 *
 * Bytes flow file → Decoder (hash, encoding, UTF-8 out) → csv-parse or the line splitter → rows.
 * scanFile runs that once to hash, validate and count a file; readRows runs it again to ingest.
 */
import { isAscii, isUtf8 } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { finished, pipeline, Readable } from 'node:stream';
import { parse, type CsvError, type Parser } from 'csv-parse';
import iconv from 'iconv-lite';
import { ErpEdgeError, isErpEdgeError } from '../../../common/errors.js';
import { dialectOf, type Dialect } from './schema.js';

export type FileFormat = 'csv' | 'tsv' | 'jsonl';
export type ResolvedEncoding = 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';
export type FileEncoding = 'auto' | ResolvedEncoding;
export interface FormatOptions {
  format: FileFormat;
  encoding: FileEncoding;
  /** csv/tsv: delimiter and quoting, as schema.ts `dialectOf` resolves them; default: that of `format`. */
  dialect?: Dialect;
  /** Columns (JSON Lines: top-level properties) every row must carry, non-empty: the business key. */
  keyColumns?: readonly string[];
}
/** Options once 'auto' has been resolved (FileScan.encoding). */
export type ReadOptions = FormatOptions & { encoding: ResolvedEncoding };
export interface FileRow {
  /** 1-based line where the record starts in the file. */
  line: number;
  fields: Record<string, unknown>;
}
export interface FileScan {
  /** SHA-256 (hex) of the bytes read. */
  sha256: string;
  /** Bytes read: the `size` asked for, unless the file was shorter. */
  size: number;
  encoding: ResolvedEncoding;
  /** Data records: the header excluded (csv/tsv), blank lines excluded (jsonl); a last one without line feed included. */
  rows: number;
  /** The content's last character is a line feed (false for an empty file): if not, the last row may be unfinished. */
  endsWithNewline: boolean;
}

/**
 * One read of bytes [0, size): SHA-256, encoding detection, and a full parse that throws
 * ERP_FILE_MALFORMED on the first bad record (or on bytes the encoding cannot decode).
 * `size` defaults to the file's size when opened; bytes appended later are not read.
 *
 * The error's context is { line?, reason }, plus `unterminated: true` and `completeSize` when the
 * problem lies in the end of the content that no line feed ends (a last record cut short, an open
 * quote, a character cut in two): what a writer still writing leaves, an error only once the file is
 * final. completeSize is the byte length up to its last line feed: scanFile/readRows bounded to it
 * read complete lines (which can fail again, as unterminated, if a quoted value spans that cut).
 */
export async function scanFile(path: string, opts: FormatOptions, size?: number): Promise<FileScan> {
  const file = new FileText(path, size, new Decoder(opts.encoding, createHash('sha256')));
  try {
    return await scan(file, opts);
  } catch (err) {
    if (!(err instanceof NotUtf8) && !(await misread(file, err))) throw err;
  }
  // Under 'auto', invalid UTF-8 after non-ASCII text that was valid UTF-8: that text has gone to the
  // parser decoded as UTF-8, so the file is parsed again as windows-1252. Only such files are read twice.
  return scan(new FileText(path, file.size, new Decoder('windows-1252', createHash('sha256'))), opts);
}

/**
 * Streams the records of bytes [0, size) of a file, in order, in constant memory, skipping the first
 * `startAfterRow` (still parsed: a malformed one still fails the file). Throws ErpEdgeError
 * ('ERP_FILE_MALFORMED', `line N: <problem>` or an encoding problem) as scanFile does.
 */
export function readRows(path: string, opts: ReadOptions, from: { startAfterRow?: number; size?: number } = {}): AsyncGenerator<FileRow> {
  // The row generator itself: a generator wrapping it would cost another promise per row.
  return rowsOf(new FileText(path, from.size, new Decoder(opts.encoding)), opts, from.startAfterRow ?? 0);
}

async function scan(file: FileText, opts: FormatOptions): Promise<FileScan> {
  // Yielding from row Infinity on, the generator yields nothing: its return value is the row count.
  const result = await rowsOf(file, opts, Infinity).next();
  const { decoder } = file;
  return {
    sha256: decoder.hash!.digest('hex'),
    size: decoder.bytes,
    encoding: decoder.encoding ?? 'utf-8',
    rows: result.done ? result.value : 0,
    endsWithNewline: decoder.endsWithNewline(),
  };
}

/**
 * Whether a record error may come from taking windows-1252 for UTF-8 (under 'auto', with non-ASCII
 * text before it: a key column's name reads differently): then it stands only if the rest of the
 * file is UTF-8 too. Checking that reads the file again, on this error path only.
 */
async function misread(file: FileText, err: unknown): Promise<boolean> {
  if (!isErpEdgeError(err, 'ERP_FILE_MALFORMED') || !file.decoder.guessing) return false;
  const check = new FileText(file.path, file.size, new Decoder('utf-8'));
  try {
    for await (const _ of await check.open()); // the Decoder throws at the first invalid byte
    return false;
  } catch (e) {
    // A character cut at the end is no evidence: a writer may still be writing it.
    if (isErpEdgeError(e, 'ERP_FILE_MALFORMED')) return !e.context['unterminated'];
    throw e;
  } finally {
    await check.close();
  }
}

/** The rows of a file, yielding (and building) only those after the first `yieldFrom`; returns the row count. */
function rowsOf(file: FileText, opts: FormatOptions, yieldFrom: number): AsyncGenerator<FileRow, number> {
  return opts.format === 'jsonl' ? jsonlRows(file, opts, yieldFrom) : delimitedRows(file, opts, yieldFrom);
}

// ---------------------------------------------------------------------------------------------
// Files

/** Bytes [0, size) of a file as UTF-8, through a Decoder (which hashes and checks them on the way). */
class FileText {
  private stream: Readable | undefined;

  /** `size`: undefined until opened, then the size of the file as opened. */
  constructor(
    readonly path: string,
    public size: number | undefined,
    readonly decoder: Decoder,
  ) {}

  async open(): Promise<AsyncIterable<Buffer>> {
    const handle = await open(this.path, 'r');
    try {
      this.size ??= (await handle.stat()).size;
      // A stream cannot be bounded to zero bytes (`end` is inclusive).
      this.stream = this.size > 0 ? handle.createReadStream({ start: 0, end: this.size - 1 }) : Readable.from([]);
    } catch (err) {
      await handle.close();
      throw err;
    }
    if (this.size === 0) await handle.close();
    return decoded(this.stream, this.decoder);
  }

  /**
   * Bytes up to and including the last line feed of what was read (0 if none): bounded to that, a
   * read takes complete lines only. Searched backwards from the end; run on the error path only.
   */
  async completeSize(): Promise<number> {
    const { encoding, bomLength } = this.decoder;
    const unit = encoding === 'utf-16le' || encoding === 'utf-16be' ? 2 : 1;
    let end = bomLength + Math.floor((this.decoder.bytes - bomLength) / unit) * unit;
    const block = Buffer.alloc(64 * 1024); // even: blocks stay aligned to UTF-16 code units
    const handle = await open(this.path, 'r');
    try {
      while (end > bomLength) {
        const start = Math.max(bomLength, end - block.length);
        const { bytesRead } = await handle.read(block, 0, end - start, start);
        if (bytesRead < end - start) return 0; // the file got shorter: nothing is known complete
        for (let i = end - start - unit; i >= 0; i -= unit) if (isLineFeed(block, i, encoding)) return start + i + unit;
        end = start;
      }
      return 0;
    } finally {
      await handle.close();
    }
  }

  /** Destroys the stream and waits for the fd to be closed, so the caller may move/delete the file straight after. */
  async close(): Promise<void> {
    const stream = this.stream;
    if (!stream) return;
    stream.destroy();
    // Not events.once: it would reject with the stream's error, masking the one being thrown.
    if (!stream.closed) await new Promise<void>((resolve) => stream.once('close', () => resolve()));
  }
}

function isLineFeed(b: Buffer, i: number, encoding: ResolvedEncoding | undefined): boolean {
  if (encoding === 'utf-16le') return b[i] === 0x0a && b[i + 1] === 0x00;
  if (encoding === 'utf-16be') return b[i] === 0x00 && b[i + 1] === 0x0a;
  return b[i] === 0x0a;
}

/**
 * Completes an error about the unterminated end of the content (context.unterminated) with
 * context.completeSize, for a caller that wants to take the complete lines meanwhile.
 */
async function withCompleteSize(err: unknown, file: FileText): Promise<unknown> {
  if (isErpEdgeError(err, 'ERP_FILE_MALFORMED') && err.context['unterminated'] === true) {
    err.context['completeSize'] = await file.completeSize();
  }
  return err;
}

async function* decoded(file: AsyncIterable<Buffer>, decoder: Decoder): AsyncGenerator<Buffer> {
  for await (const raw of file) {
    const text = decoder.write(raw);
    if (text.length > 0) yield text;
  }
  const text = decoder.end();
  if (text.length > 0) yield text;
}

// ---------------------------------------------------------------------------------------------
// Encodings

const EMPTY = Buffer.alloc(0);
/** Bytes looked at before deciding the encoding: BOM and the UTF-16-without-BOM check. */
const HEAD_BYTES = 4096;
const BOMS: ReadonlyArray<readonly [ResolvedEncoding, Buffer]> = [
  ['utf-8', Buffer.from([0xef, 0xbb, 0xbf])],
  ['utf-16le', Buffer.from([0xff, 0xfe])],
  ['utf-16be', Buffer.from([0xfe, 0xff])],
];
const NAMES: Record<ResolvedEncoding, string> = { 'utf-8': 'UTF-8', 'utf-16le': 'UTF-16LE', 'utf-16be': 'UTF-16BE', 'windows-1252': 'windows-1252' };

/** Thrown under 'auto' when the file turns out not to be UTF-8 too late to switch (see Decoder.invalidUtf8). */
class NotUtf8 extends Error {}

function undecodable(reason: string, unterminated = false): ErpEdgeError {
  return new ErpEdgeError('ERP_FILE_MALFORMED', reason, unterminated ? { reason, unterminated } : { reason });
}

/**
 * Turns a file's bytes, chunk by chunk, into UTF-8 for the parsers: strips the BOM, hashes the raw
 * bytes, resolves 'auto', and rejects what the encoding cannot decode. UTF-8 passes through as is
 * (validated by the native isUtf8, no decoding): the common case stays cheap.
 */
class Decoder {
  /** Raw bytes seen. */
  bytes = 0;
  /** Known once the head has been looked at. */
  encoding: ResolvedEncoding | undefined;
  /** Bytes of the byte-order mark (stripped), 0 without one. */
  bomLength = 0;
  private head: Buffer[] | undefined = [];
  private lastBytes = [-1, -1];
  /** 'auto' without a BOM: UTF-8 until a byte says otherwise. */
  private tentative = false;
  /** Every byte handed on so far was ASCII (the same text in UTF-8 and windows-1252). */
  private ascii = true;
  /** A UTF-8 sequence cut by the chunk's end, completed by the next chunk. */
  private carry: Buffer | undefined;
  private text: { write(raw: Buffer): string; end(): string | undefined } | undefined;

  constructor(
    private readonly requested: FileEncoding,
    readonly hash?: Hash,
  ) {}

  write(raw: Buffer): Buffer {
    this.hash?.update(raw);
    this.bytes += raw.length;
    this.trackEnd(raw);
    if (!this.head) return this.decode(raw, this.bytes - raw.length);
    this.head.push(raw);
    return this.bytes < HEAD_BYTES ? EMPTY : this.start();
  }

  end(): Buffer {
    const first = this.head ? this.start() : EMPTY;
    const last = this.finish();
    return last.length === 0 ? first : first.length === 0 ? last : Buffer.concat([first, last]);
  }

  /** Non-ASCII text has been taken for UTF-8 under 'auto', and no invalid byte has shown up (yet). */
  get guessing(): boolean {
    return this.tentative && this.encoding === 'utf-8' && !this.ascii;
  }

  /** In the resolved encoding: UTF-16LE ends 0A 00, UTF-16BE 00 0A, the others 0A. */
  endsWithNewline(): boolean {
    if (this.bytes - this.bomLength < (this.encoding?.startsWith('utf-16') ? 2 : 1)) return false;
    const [beforeLast, last] = this.lastBytes;
    if (this.encoding === 'utf-16le') return beforeLast === 0x0a && last === 0x00;
    if (this.encoding === 'utf-16be') return beforeLast === 0x00 && last === 0x0a;
    return last === 0x0a;
  }

  private trackEnd(raw: Buffer): void {
    if (raw.length >= 2) this.lastBytes = [raw[raw.length - 2]!, raw[raw.length - 1]!];
    else if (raw.length === 1) this.lastBytes = [this.lastBytes[1]!, raw[0]!];
  }

  /** Decides the encoding from the head (BOM, NUL pattern), then decodes the head. */
  private start(): Buffer {
    const head = Buffer.concat(this.head!);
    this.head = undefined;
    const bom = BOMS.find(([, b]) => head.length >= b.length && head.subarray(0, b.length).equals(b));
    if (bom && this.requested !== 'auto' && bom[0] !== this.requested) {
      throw undecodable(`starts with a ${NAMES[bom[0]]} byte-order mark, but encoding is ${this.requested}; set encoding: ${bom[0]} or auto`);
    }
    this.encoding = bom?.[0] ?? (this.requested === 'auto' ? 'utf-8' : this.requested);
    this.tentative = this.requested === 'auto' && !bom;
    this.bomLength = bom?.[1].length ?? 0;
    if (!bom && (this.encoding === 'utf-8' || this.encoding === 'windows-1252')) {
      // Valid UTF-8 (and any windows-1252), so nothing else would catch it: rows of NUL-riddled names.
      const utf16 = utf16WithoutBom(head);
      if (utf16) throw undecodable(`looks like UTF-16 without a byte-order mark (NUL bytes in most positions); set encoding: ${utf16}`);
    }
    if (this.encoding === 'utf-16le' || this.encoding === 'utf-16be') {
      // fatal: an unpaired surrogate throws instead of becoming U+FFFD; stream: pairs may straddle chunks.
      const decoder = new TextDecoder(this.encoding, { fatal: true, ignoreBOM: true });
      this.text = { write: (raw) => decoder.decode(raw, { stream: true }), end: () => decoder.decode() };
    } else if (this.encoding === 'windows-1252') {
      this.text = iconv.getDecoder('windows-1252');
    }
    return this.decode(head.subarray(this.bomLength), this.bomLength);
  }

  /** `raw` starts at byte `offset` of the file. */
  private decode(raw: Buffer, offset: number): Buffer {
    if (this.encoding === 'utf-8') {
      if (this.ascii && isAscii(raw)) return raw; // ASCII so far: no sequence carried over either
      const asciiBefore = this.ascii;
      this.ascii = false;
      if (this.validUtf8(raw, offset, asciiBefore)) return raw;
      // Under 'auto' with nothing but ASCII before this chunk, nothing handed on so far reads
      // differently in windows-1252: switch here instead of reading the file again.
      this.encoding = 'windows-1252';
      this.text = iconv.getDecoder('windows-1252');
    }
    try {
      return Buffer.from(this.text!.write(raw), 'utf8');
    } catch {
      // Only the UTF-16 TextDecoder throws (fatal); windows-1252 maps every byte.
      throw undecodable(`not valid ${NAMES[this.encoding!]}: an unpaired surrogate in bytes ${offset}-${offset + raw.length - 1}`);
    }
  }

  /**
   * The end of the content: a character cut short there is what a writer still writing leaves, so it
   * is `unterminated` (and, under 'auto', no evidence of windows-1252).
   */
  private finish(): Buffer {
    if (this.encoding === 'utf-8') {
      if (this.carry) {
        const at = this.bytes - this.carry.length;
        throw undecodable(`ends inside a UTF-8 character (byte ${hex(this.carry[0]!)} at offset ${at}): cut short, or not UTF-8 (then set encoding: windows-1252)`, true);
      }
      return EMPTY;
    }
    if (this.encoding !== 'windows-1252' && (this.bytes - this.bomLength) % 2 !== 0) {
      throw undecodable(`${NAMES[this.encoding!]} file with an odd number of bytes (${this.bytes}): cut short, or not UTF-16`, true);
    }
    try {
      return Buffer.from(this.text!.end() ?? '', 'utf8');
    } catch {
      throw undecodable(`not valid ${NAMES[this.encoding!]}: ends inside a surrogate pair (cut short?)`, true);
    }
  }

  /**
   * Whether `raw` (after the sequence carried from the previous chunk) is valid UTF-8; a sequence
   * cut by its end is carried to the next chunk. false: switch to windows-1252 (see invalidUtf8).
   */
  private validUtf8(raw: Buffer, offset: number, asciiBefore: boolean): boolean {
    const buf = this.carry ? Buffer.concat([this.carry, raw]) : raw;
    const start = offset - (this.carry?.length ?? 0);
    const cut = incompleteUtf8Tail(buf);
    const whole = cut === 0 ? buf : buf.subarray(0, buf.length - cut);
    if (!isUtf8(whole)) return this.invalidUtf8(whole, start, firstInvalidUtf8(whole), asciiBefore);
    this.carry = cut === 0 ? undefined : Buffer.from(buf.subarray(buf.length - cut));
    return true;
  }

  /**
   * Invalid UTF-8 at buf[at], file offset start + at. An error for a file said (or marked by its BOM)
   * to be UTF-8. Under 'auto': false (switch to windows-1252) if only ASCII was handed on before,
   * else NotUtf8 (scanFile reads the file again as windows-1252).
   */
  private invalidUtf8(buf: Buffer, start: number, at: number, asciiBefore: boolean): false {
    const where = `byte ${hex(buf[at]!)} at offset ${start + at}`;
    if (!this.tentative) {
      const hint = this.bomLength > 0 ? ' although it starts with a UTF-8 byte-order mark' : '; set encoding: windows-1252 or auto';
      throw undecodable(`not valid UTF-8 (${where})${hint}`);
    }
    if (!asciiBefore) throw new NotUtf8(where);
    return false;
  }
}

function hex(byte: number): string {
  return `0x${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/** 'utf-16le'/'utf-16be' if most bytes at odd (LE) or even (BE) positions are NUL, as in UTF-16 text. */
function utf16WithoutBom(head: Buffer): 'utf-16le' | 'utf-16be' | undefined {
  const pairs = Math.floor(head.length / 2);
  if (pairs === 0) return undefined;
  let even = 0;
  let odd = 0;
  for (let i = 0; i < pairs * 2; i += 2) {
    if (head[i] === 0) even++;
    if (head[i + 1] === 0) odd++;
  }
  if (odd > pairs / 2 && even < odd / 4) return 'utf-16le';
  if (even > pairs / 2 && odd < even / 4) return 'utf-16be';
  return undefined;
}

/** Length (0-3) of a UTF-8 sequence begun but not finished at the end of `b`. */
function incompleteUtf8Tail(b: Buffer): number {
  for (let k = 1; k <= 3 && k <= b.length; k++) {
    const c = b[b.length - k]!;
    if (c < 0x80) return 0;
    if (c >= 0xc0) return k < (c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2) ? k : 0;
  }
  return 0;
}

/** Index of the first byte of `b` that starts no valid UTF-8 sequence (only run to word an error). */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0 || i + n >= b.length) return i;
    // The second byte's range excludes overlong forms, surrogates and code points past U+10FFFF.
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    if (b[i + 1]! < lo || b[i + 1]! > hi) return i;
    for (let j = 2; j <= n; j++) if ((b[i + j]! & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return Math.max(0, b.length - 1); // not reached for a buffer isUtf8 rejected
}

// ---------------------------------------------------------------------------------------------
// CSV / TSV

function malformed(line: number, reason: string, cause?: unknown): ErpEdgeError {
  return new ErpEdgeError('ERP_FILE_MALFORMED', `line ${line}: ${reason}`, { line, reason }, { cause });
}

async function* delimitedRows(file: FileText, opts: FormatOptions, yieldFrom: number): AsyncGenerator<FileRow, number> {
  const dialect = opts.dialect ?? dialectOf({ format: opts.format, relax_quotes: false });
  const records = new DelimitedRecords(opts.format, dialect, opts.keyColumns);
  const parser = csvParser(dialect, (err) => (records.failure ??= err));
  const drain = new Drain<string[]>(parser);
  let rows = 0;
  try {
    pipeline(await file.open(), parser, () => {}); // an error of the file or the decoder reaches the parser, hence `more`
    do {
      for (let record = drain.read(); record !== null; record = drain.read()) {
        const line = records.take(record);
        if (line !== 0 && ++rows > yieldFrom) yield { line, fields: records.fields(record) };
      }
      records.checkFailure(); // everything parsed before csv-parse's error has been taken
    } while (await drain.more());
    records.checkFailure();
    return rows;
  } catch (err) {
    if (isRecordError(err) && !records.followed && (await nothingFollows(drain, file.decoder))) err.context['unterminated'] = true;
    throw await withCompleteSize(err, file);
  } finally {
    parser.destroy();
    await file.close();
  }
}

function isRecordError(err: unknown): err is ErpEdgeError {
  return isErpEdgeError(err, 'ERP_FILE_MALFORMED') && typeof err.context['line'] === 'number' && err.context['unterminated'] === undefined;
}

/**
 * Whether the record that failed is the content's last and no line feed ends it: what a writer
 * still writing leaves. Any record after it means a line feed ended it; looking stops 1 MiB on
 * (a runaway quoted value would otherwise be read to the end of the file).
 */
async function nothingFollows(drain: Drain<string[]>, decoder: Decoder): Promise<boolean> {
  const limit = decoder.bytes + 1024 * 1024;
  try {
    do {
      if (drain.read() !== null || decoder.bytes > limit) return false;
    } while (await drain.more());
  } catch {
    return false; // the rest fails too: the first error stands as it is
  }
  return !decoder.endsWithNewline();
}

function csvParser(d: Dialect, onError: (err: CsvError) => void): Parser {
  return parse({
    delimiter: d.delimiter,
    quote: d.quote ?? false,
    escape: d.escape ?? false,
    relax_quotes: d.relaxQuotes,
    record_delimiter: ['\r\n', '\n'], // explicit: auto-detection locks onto the first ending seen, breaking mixed files
    bom: false, // the Decoder strips it
    // Blank lines come through as [''], so every line is seen and counted by DelimitedRecords:
    // csv-parse's own line count is off (a CRLF counts twice), and the info object it builds per
    // record for on_record, the alternative, halves its speed.
    skip_empty_lines: false,
    relax_column_count: true, // DelimitedRecords checks the count against the header
    // An error does not end the stream: the records before it still come through, so the error is
    // reported at its record's start line once they have been counted (its `records` says where).
    skip_records_with_error: true,
    on_skip: (err) => {
      if (err) onError(err);
      return undefined;
    },
  });
}

/** csv-parse's records → rows: start lines, blank lines, the header, the field count, the key. */
class DelimitedRecords {
  /** The first error csv-parse reported; it goes on parsing past it, see csvParser. */
  failure: CsvError | undefined;
  /** That error was thrown when a later record came: a line feed ended the failing one. */
  followed = false;
  /** Line where the next record starts. */
  private next = 1;
  /** Records taken, blank ones included: csv-parse counts them the same way (CsvError.records). */
  private taken = 0;
  private header: string[] | undefined;
  /** Index of each key column in the header (-1: missing). */
  private keys: number[] = [];
  private readonly quoting: boolean;

  constructor(
    private readonly format: FileFormat,
    dialect: Dialect,
    private readonly keyColumns: readonly string[] = [],
  ) {
    this.quoting = dialect.quote !== undefined;
  }

  /** Checks a record; returns its start line, or 0 for a blank line or the header. */
  take(record: string[]): number {
    if (this.failure && this.taken === this.failure['records']) {
      this.followed = true;
      throw this.failed();
    }
    this.taken++;
    const line = this.next;
    // Record delimiters are '\n'/'\r\n', so a record spans 1 + the '\n's in its (quoted) values.
    this.next = this.quoting ? line + 1 + newlinesIn(record) : line + 1;
    // A line holding only `""` is taken for blank too: csv-parse gives both as [''].
    if (record.length === 1 && record[0] === '') return 0;
    if (this.header === undefined) {
      this.setHeader(record, line);
      return 0;
    }
    if (record.length !== this.header.length) throw malformed(line, `expected ${this.header.length} fields as in the header, got ${record.length}`);
    for (let k = 0; k < this.keys.length; k++) {
      const i = this.keys[k]!;
      if (i < 0) throw malformed(line, `key column ${JSON.stringify(this.keyColumns[k])} is missing`);
      if (record[i] === '') throw malformed(line, `key column ${JSON.stringify(this.keyColumns[k])} is empty`);
    }
    return line;
  }

  fields(record: string[]): Record<string, unknown> {
    const fields: Record<string, unknown> = {};
    const header = this.header!;
    for (let i = 0; i < record.length; i++) fields[header[i]!] = record[i];
    return fields;
  }

  /** Call once every record csv-parse has pushed has been taken. */
  checkFailure(): void {
    if (this.failure) throw this.failed();
  }

  private setHeader(record: string[], line: number): void {
    const seen = new Set<string>();
    for (const name of record) {
      if (name.trim() === '') throw malformed(line, 'empty column name in header');
      if (seen.has(name)) throw malformed(line, `duplicate column name ${JSON.stringify(name)} in header`);
      seen.add(name);
    }
    this.header = record;
    this.keys = this.keyColumns.map((k) => record.indexOf(k));
  }

  /** The failing record starts where the next one would have. */
  private failed(): ErpEdgeError {
    const err = malformed(this.next, this.reason(this.failure!), this.failure);
    // A quote still open at the end: the record runs to the end of the content, cut or not.
    if (this.failure!.code === 'CSV_QUOTE_NOT_CLOSED') err.context['unterminated'] = true;
    return err;
  }

  private reason(err: CsvError): string {
    const column = typeof err['column'] === 'number' ? this.columnName(err['column']) : 'a value';
    const relax = this.format === 'tsv' ? 'set quote: none if values are not quoted, or relax_quotes: true' : 'set relax_quotes: true';
    switch (err.code) {
      case 'CSV_QUOTE_NOT_CLOSED':
        return 'unclosed quote';
      case 'INVALID_OPENING_QUOTE':
        return `quote inside the unquoted value of ${column}; ${relax} to keep such quotes as text`;
      case 'CSV_INVALID_CLOSING_QUOTE':
        return `text after the closing quote of ${column}; ${relax} to keep it as text`;
      default:
        return err.message; // may quote csv-parse's own line count; the `line N:` prefix is the authoritative start
    }
  }

  private columnName(index: number): string {
    const name = this.header?.[index];
    return name === undefined ? `field ${index + 1}` : `column ${JSON.stringify(name)}`;
  }
}

function newlinesIn(record: string[]): number {
  let n = 0;
  for (let f = 0; f < record.length; f++) {
    const value = record[f]!;
    for (let i = value.indexOf('\n'); i !== -1; i = value.indexOf('\n', i + 1)) n++;
  }
  return n;
}

/**
 * Reads an object stream without a promise per object (Node's async iterator costs one per record):
 * what is buffered is taken synchronously with read(), and only an empty buffer is awaited.
 */
class Drain<T> {
  private wake: () => void = () => {};
  /** undefined: still running; null: ended; else the stream's error. */
  private outcome: unknown = undefined;

  constructor(private readonly stream: Readable) {
    stream.on('readable', () => this.wake());
    finished(stream, { writable: false }, (err) => {
      this.outcome = err ?? null;
      this.wake();
    });
  }

  /** The next buffered object, or null when none is buffered. */
  read(): T | null {
    return this.stream.destroyed ? null : (this.stream.read() as T | null);
  }

  /** Waits until there may be more to read: false once the stream has ended; throws its error. */
  async more(): Promise<boolean> {
    if (this.outcome === undefined && this.stream.readableLength === 0) {
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    if (this.outcome !== undefined && this.outcome !== null) throw this.outcome;
    return this.outcome === undefined || this.stream.readableLength > 0;
  }
}

// ---------------------------------------------------------------------------------------------
// JSON Lines

async function* jsonlRows(file: FileText, opts: FormatOptions, yieldFrom: number): AsyncGenerator<FileRow, number> {
  const lines = new LineSplitter();
  const keyColumns = opts.keyColumns ?? [];
  let line = 0;
  let rows = 0;
  /** The row on the next line, undefined for a blank line or a row not to be yielded. */
  const take = (content: string): FileRow | undefined => {
    line++;
    if (content.trim() === '') return undefined;
    const fields = parseObject(content, line);
    checkKey(fields, line, keyColumns);
    return ++rows > yieldFrom ? { line, fields } : undefined;
  };
  let tail = false;
  try {
    for await (const chunk of await file.open()) {
      for (const content of lines.push(chunk)) {
        const row = take(content);
        if (row) yield row;
      }
    }
    const last = lines.end(); // a last line no line feed ends
    tail = last !== undefined;
    const row = last === undefined ? undefined : take(last);
    if (row) yield row;
    return rows;
  } catch (err) {
    if (tail && isRecordError(err)) err.context['unterminated'] = true;
    throw await withCompleteSize(err, file);
  } finally {
    await file.close();
  }
}

function parseObject(content: string, line: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(content);
  } catch (err) {
    throw malformed(line, `invalid JSON: ${(err as Error).message}`, err);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const kind = value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;
    throw malformed(line, `expected a JSON object, got ${kind}`);
  }
  return value as Record<string, unknown>;
}

/** A row without its key cannot get a stable identity: the file is malformed for this config. */
function checkKey(fields: Record<string, unknown>, line: number, keyColumns: readonly string[]): void {
  for (const k of keyColumns) {
    const v = fields[k];
    if (v === undefined) throw malformed(line, `key column ${JSON.stringify(k)} is missing`);
    if (v === null || v === '' || typeof v === 'object') throw malformed(line, `key column ${JSON.stringify(k)} is ${v === '' ? 'empty' : 'not a plain value'}`);
  }
}

/**
 * Splits UTF-8 bytes into lines at '\n', dropping a '\r' before it (0x0A never occurs inside a
 * UTF-8 character, so bytes can be split before decoding). A line may span chunks. A lone '\r' is
 * no line break: JSON Lines ends lines with '\n' (or '\r\n').
 */
class LineSplitter {
  private partial: Buffer[] = [];

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl !== -1; nl = chunk.indexOf(0x0a, from)) {
      lines.push(this.take(chunk.subarray(from, nl)));
      from = nl + 1;
    }
    if (from < chunk.length) this.partial.push(chunk.subarray(from));
    return lines;
  }

  /** The last line if the text does not end with '\n'. */
  end(): string | undefined {
    return this.partial.length === 0 ? undefined : this.take(EMPTY);
  }

  private take(tail: Buffer): string {
    const bytes = this.partial.length === 0 ? tail : Buffer.concat([...this.partial, tail]);
    this.partial = [];
    const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
    return bytes.toString('utf8', 0, end);
  }
}
