/**
 * A chunk is a run of consecutive records of one stream stored as one outbox row: their wire
 * JSON, one per line. One row per append (instead of one per record) is what makes a durable
 * append cheap; readers split a chunk back into records.
 *
 * A newline is a safe separator: JSON text never contains a raw one (JSON.stringify escapes it).
 * Every line starts with `{"seq":N,` (the record's seq first), so seqs can be read and
 * renumbered without parsing the record.
 */
export const CHUNK_MAX_RECORDS = 1_000;
export const CHUNK_MAX_BYTES = 256 * 1024;

export interface ChunkDraft {
  firstSeq: number;
  lastSeq: number;
  minTs: number;
  bytes: number;
  payload: string;
}

/** A record as the capture writer encoded it: its JSON without the seq (see recordLine), and that body's UTF-8 size. */
export interface ChunkRecord {
  ts: number;
  body: string;
  bytes: number;
}

/**
 * Groups encoded records (seqs from `firstSeq`, in order) into chunks within the size limits, each
 * line `{"seq":N,` + body. The payload is joined from its pieces in one go: no line string and no
 * object per record (under the service's 2 MB young generation, what a batch keeps alive is
 * copied at every scavenge).
 */
export function toChunks(records: readonly ChunkRecord[], firstSeq: number): ChunkDraft[] {
  const chunks: ChunkDraft[] = [];
  let start = 0;
  while (start < records.length) {
    let end = start;
    let bytes = 0;
    let minTs = Number.POSITIVE_INFINITY;
    while (end < records.length && end - start < CHUNK_MAX_RECORDS) {
      const size = lineBytes(firstSeq + end, records[end]!.bytes);
      if (end > start && bytes + size > CHUNK_MAX_BYTES) break;
      bytes += size;
      minTs = Math.min(minTs, records[end]!.ts);
      end++;
    }
    const parts = new Array<string>(2 * (end - start));
    for (let i = start; i < end; i++) {
      const seq = firstSeq + i;
      parts[2 * (i - start)] = i === start ? `{"seq":${seq},` : `\n{"seq":${seq},`;
      parts[2 * (i - start) + 1] = records[i]!.body;
    }
    // Newline-separated lines (see above); bytes count each line, not the separators.
    chunks.push({ firstSeq: firstSeq + start, lastSeq: firstSeq + end - 1, minTs, bytes, payload: parts.join('') });
    start = end;
  }
  return chunks;
}

/** Lines of consecutive records as one chunk row (no size limits: for rewriting parts of an existing chunk). */
export function linesToChunk(lines: readonly string[], firstSeq: number, fallbackTs = Date.now()): ChunkDraft {
  let bytes = 0;
  let minTs = Number.POSITIVE_INFINITY;
  for (const l of lines) {
    bytes += Buffer.byteLength(l);
    minTs = Math.min(minTs, recordTsOr(l, fallbackTs));
  }
  return { firstSeq, lastSeq: firstSeq + lines.length - 1, minTs: Number.isFinite(minTs) ? minTs : fallbackTs, bytes, payload: lines.join('\n') };
}

export function splitChunk(payload: string): string[] {
  return payload.split('\n');
}

/** Capture time of a record line. */
export function recordTs(line: string): number {
  return (JSON.parse(line) as { ts: number }).ts;
}

const SEQ_PREFIX = /^\{"seq":(\d+),/;

/** The `{"seq":N,` a line starts with. */
function seqPrefix(line: string): RegExpExecArray {
  const m = SEQ_PREFIX.exec(line);
  if (!m) throw new Error('outbox record line does not start with its seq');
  return m;
}

/** A line with its seq replaced (the record itself is untouched). */
export function renumberLine(line: string, seq: number): string {
  return `{"seq":${seq},${line.slice(seqPrefix(line)[0].length)}`;
}

/** The line without its seq: `"id":...}` (what a record is before the outbox numbers it). */
export function lineBody(line: string): string {
  return line.slice(seqPrefix(line)[0].length);
}

/** The seq a line carries, read from its prefix (no JSON parse). */
export function lineSeq(line: string): number {
  return Number(seqPrefix(line)[1]);
}

/** UTF-8 size of `{"seq":N,` + a body of `bodyBytes` bytes (the prefix is ASCII). */
export function lineBytes(seq: number, bodyBytes: number): number {
  return 8 + digits(seq) + bodyBytes;
}

/** Decimal digits of a positive safe integer, without making its string (this runs per record appended). */
function digits(n: number): number {
  let d = 1;
  for (let p = 10; p <= n && d < 16; p *= 10) d++;
  return d < 16 ? d : String(n).length;
}

/** Capture time of a record line, or `fallback` when the line cannot be read (a damaged row). */
export function recordTsOr(line: string, fallback: number): number {
  try {
    const ts = (JSON.parse(line) as { ts?: unknown }).ts;
    return typeof ts === 'number' && Number.isFinite(ts) ? ts : fallback;
  } catch {
    return fallback;
  }
}

/**
 * Why a stored line cannot be sent as the record with seq `seq`, or undefined when it can: it must
 * be one JSON object carrying its own seq. (Whether the record meets the wire schema is the
 * relay's to say, or `outbox repair`'s: this check runs on every record read, so it stays cheap.)
 */
export function lineProblem(line: string, seq: number): string | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    return `record is not valid JSON (${(err as Error).message.slice(0, 120)})`;
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'record is not a JSON object';
  // This release writes the seq first (`{"seq":N,`); rows of older releases carry it elsewhere.
  const carried = (v as { seq?: unknown }).seq;
  if (carried !== seq) return `record carries seq ${JSON.stringify(carried) ?? 'none'} where ${seq} is expected`;
  return undefined;
}

/**
 * The forwarder's read-time check of a line, cheap for a line as this release writes it
 * (`{"seq":N,` … `}`: no parse on the hot path); anything else gets the full parse. A line damaged
 * inside that still passes is refused by the relay, and the rejection moves it to the dead-letter
 * table like any poison record.
 */
export function quickLineProblem(line: string, seq: number): string | undefined {
  if (line.charCodeAt(line.length - 1) === CLOSE_BRACE && startsWithSeq(line, seq)) return undefined;
  return lineProblem(line, seq);
}

const SEQ_OPEN = '{"seq":';
const CLOSE_BRACE = 0x7d;
const COMMA = 0x2c;

/**
 * Whether `line` starts with exactly `{"seq":<seq>,` (`seq` as JSON writes it: no sign, no leading
 * zero). Read digit by digit rather than compared with a string made for it: this runs for every
 * record the forwarder reads, and the strings were a share of the agent's young-generation garbage.
 */
function startsWithSeq(line: string, seq: number): boolean {
  if (!line.startsWith(SEQ_OPEN)) return false;
  const from = SEQ_OPEN.length;
  // 15 digits at most: every such number is exact in a double (seqs beyond it take the slow path).
  const end = Math.min(line.length, from + 16);
  let v = 0;
  let i = from;
  for (; i < end; i++) {
    const c = line.charCodeAt(i) - 48;
    if (c < 0 || c > 9) break;
    v = v * 10 + c;
  }
  const n = i - from;
  if (n === 0 || n > 15 || (n > 1 && line.charCodeAt(from) === 48)) return false;
  return line.charCodeAt(i) === COMMA && v === seq;
}

/** Why a chunk row cannot be split into its records at all, or undefined (its lines can then be checked one by one). */
export function chunkProblem(payload: unknown, firstSeq: number, lastSeq: number): string | undefined {
  if (typeof payload !== 'string') return `chunk payload is not text (${payload === null ? 'null' : typeof payload})`;
  if (!Number.isInteger(firstSeq) || !Number.isInteger(lastSeq) || firstSeq < 1 || lastSeq < firstSeq) return `chunk seq range ${firstSeq}..${lastSeq} is not valid`;
  const lines = splitChunk(payload).length;
  if (lines !== lastSeq - firstSeq + 1) return `chunk ${firstSeq}..${lastSeq} holds ${lines} line(s) for ${lastSeq - firstSeq + 1} seq(s)`;
  return undefined;
}
