import { z } from 'zod';
import { durationMs } from '../../../common/duration.js';
import { topicLevel } from '../../../common/wire-v1.js';

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
  format: z.enum(['csv', 'tsv', 'jsonl']).default('csv'),
  delimiter: z.string().length(1).optional(),
  encoding: z.enum(['auto', 'utf-8', 'windows-1252']).default('auto'),
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
  /** A file is read once its size has not changed for this long. */
  stable_time: durationMs.default(2_000),
  archive_dir: z.string().min(1).optional(),
  error_dir: z.string().min(1).optional(),
  /** Records per outbox transaction (and per checkpoint). */
  batch_size: z.number().int().min(1).max(100_000).default(1_000),
  /** How long a file's content hash is remembered to refuse a second ingestion. */
  dedupe_window: durationMs.default(90 * 86_400_000),
});

export type FileDropConfig = z.output<typeof fileDropSchema>;
