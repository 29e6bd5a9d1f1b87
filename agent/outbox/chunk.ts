/**
 * A chunk is a run of consecutive records of one stream stored as one outbox row: their v1 wire
 * JSON, one per line. One row per append (instead of one per record) is what makes a durable
 * append cheap; readers split a chunk back into records.
 *
 * A newline is a safe separator: JSON text never contains a raw one (JSON.stringify escapes it).
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

export interface EncodedRecord {
  ts: number;
  json: string;
  bytes: number;
}

/** Groups encoded records (seqs from `firstSeq`, in order) into chunks within the size limits. */
export function toChunks(records: readonly EncodedRecord[], firstSeq: number): ChunkDraft[] {
  const chunks: ChunkDraft[] = [];
  let start = 0;
  while (start < records.length) {
    let end = start;
    let bytes = 0;
    let minTs = Number.POSITIVE_INFINITY;
    while (end < records.length && end - start < CHUNK_MAX_RECORDS && (end === start || bytes + records[end]!.bytes <= CHUNK_MAX_BYTES)) {
      bytes += records[end]!.bytes;
      minTs = Math.min(minTs, records[end]!.ts);
      end++;
    }
    const lines: string[] = [];
    for (let i = start; i < end; i++) lines.push(records[i]!.json);
    chunks.push({ firstSeq: firstSeq + start, lastSeq: firstSeq + end - 1, minTs, bytes, payload: lines.join('\n') });
    start = end;
  }
  return chunks;
}

export function splitChunk(payload: string): string[] {
  return payload.split('\n');
}

/** Capture time of a record line, read without parsing the whole record. */
export function recordTs(line: string): number {
  return (JSON.parse(line) as { ts: number }).ts;
}
