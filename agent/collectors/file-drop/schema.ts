import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';
import { topicLevel } from '../../../common/wire-v1.js';

/** One character, or `none` to turn quote (or escape) processing off. */
const quoteChar = z.union([z.literal('none'), z.string().length(1)]);

/** file-drop config. No driver imports here: `validate` loads schemas only. */
export const fileDropSchema = z.strictObject({
  type: z.literal('file-drop'),
  name: topicLevel,
  /** Stream the records go to; defaults to the collector name. */
  stream: topicLevel.optional(),
  /** Folder watched (top level only; archive/ and error/ live below it by default). */
  path: z.string().min(1),
  include: z.array(z.string().min(1)).min(1).default(['*']),
  exclude: z.array(z.string().min(1)).default([]),
  /** Name patterns ignore case unless this is true (Windows exports are often `ORDERS.CSV`). */
  case_sensitive: z.boolean().default(false),
  format: z.enum(['csv', 'tsv', 'jsonl']).default('csv'),
  /** csv: default `,` (tsv is always a tab). */
  delimiter: z.string().length(1).optional(),
  /**
   * Quote character, or `none`. Default: `"` for csv; `none` for tsv, whose values may hold `"`
   * verbatim (`Pipe 12" steel`) — set `quote: '"'` for a TSV that quotes its values.
   */
  quote: quoteChar.optional(),
  /** Escape character inside quoted values; default: the quote itself (`""` is one `"`). */
  escape: quoteChar.optional(),
  /** csv: a quote inside an unquoted value is kept as text (`12" pipe`) instead of failing the file. */
  relax_quotes: z.boolean().default(false),
  /** `auto`: a UTF-16 BOM (LE or BE) picks UTF-16; otherwise UTF-8 if valid, else windows-1252. */
  encoding: z.enum(['auto', 'utf-8', 'utf-16le', 'utf-16be', 'windows-1252']).default('auto'),
  /**
   * Business key columns (JSON Lines: top-level properties). With them a row's id is the source,
   * the key values and a hash of the row: a re-export of unchanged rows yields the same ids (the
   * relay stores them once), a changed row a new id with the same key. Without them a row's id is
   * the file's hash and the row number.
   */
  key: z.array(z.string().min(1)).min(1).optional(),
  /** Network shares (SMB/NFS) send no change events: poll them instead. */
  poll: z.boolean().default(false),
  poll_interval: durationMs.default(2_000),
  /** A file is read once its size and mtime have not changed for this long (and, on Linux, no process has it open for writing). */
  stable_time: durationMs.default(2_000),
  /** A 0-byte file counts as an empty export only once it has stayed empty this long (an ERP job may open it, then run a long query). */
  empty_stable_time: durationMs.default(60_000),
  /**
   * On Linux, a file some process still holds open for writing is not read yet (/proc is scanned;
   * processes of other users are invisible unless the agent runs as root or as the exporting user).
   */
  writer_check: z.boolean().default(true),
  /**
   * Order files are ingested in: `arrival` (first seen; files found at start-up by mtime), `mtime`
   * or `name`; ties by mtime, then name. The same order holds after a restart.
   */
  order: z.enum(['arrival', 'mtime', 'name']).default('arrival'),
  /** A stable file waits at most this long for an earlier file still being written, then goes ahead (logged). */
  order_timeout: durationMs.default(300_000),
  archive_dir: z.string().min(1).optional(),
  error_dir: z.string().min(1).optional(),
  /** Records per outbox transaction (and per checkpoint). */
  batch_size: z.number().int().min(1).max(100_000).default(1_000),
  /** How long a file's content hash is remembered to refuse a second ingestion. */
  dedupe_window: durationMs.default(90 * 86_400_000),
});

export type FileDropConfig = z.output<typeof fileDropSchema>;

/** The CSV/TSV dialect a config asks for, its format-dependent defaults resolved (the one place they live). */
export interface Dialect {
  delimiter: string;
  /** undefined: no quote processing. */
  quote: string | undefined;
  escape: string | undefined;
  relaxQuotes: boolean;
}

export function dialectOf(cfg: Pick<FileDropConfig, 'format' | 'delimiter' | 'quote' | 'escape' | 'relax_quotes'>): Dialect {
  const tsv = cfg.format === 'tsv';
  const quote = cfg.quote ?? (tsv ? 'none' : '"');
  const escape = cfg.escape ?? quote;
  return {
    delimiter: tsv ? '\t' : (cfg.delimiter ?? ','),
    quote: quote === 'none' ? undefined : quote,
    escape: escape === 'none' ? undefined : escape,
    relaxQuotes: cfg.relax_quotes,
  };
}
