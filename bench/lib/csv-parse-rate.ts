import { createReadStream } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse, type Options } from 'csv-parse';

/**
 * csv-parse with the default CSV dialect of the file-drop collector (agent/collectors/file-drop/
 * formats.ts `csvParser`: `,`, `"` quotes, CRLF or LF), counting records and nothing else: what the
 * parser alone costs.
 */
export const COLLECTOR_CSV_OPTIONS: Options = { delimiter: ',', bom: true, skip_empty_lines: true, record_delimiter: ['\r\n', '\n'] };

/**
 * Streams `path` through csv-parse alone (records counted, nothing kept) and returns the data rows
 * (the header excluded) and the seconds it took: the ceiling a collector built on csv-parse can reach.
 */
export async function csvParseRate(path: string): Promise<{ rows: number; seconds: number }> {
  let records = 0;
  const count = new Writable({
    objectMode: true,
    write(_record: unknown, _enc, done) {
      records++;
      done();
    },
  });
  const t0 = performance.now();
  await pipeline(createReadStream(path), parse(COLLECTOR_CSV_OPTIONS), count);
  return { rows: Math.max(0, records - 1), seconds: (performance.now() - t0) / 1000 };
}
