import type { QueryResult } from '../../databases/dialect.js';

/**
 * What a job reads at each run: the whole snapshot, rows in order, or an error. More than
 * `maxRows` rows is an error (ERP_QUERY_TOO_MANY_ROWS) raised before the rest is read.
 */
export interface JobSource {
  read(maxRows: number): Promise<QueryResult>;
  /** Frees what the source holds between runs (a connection pool). */
  close(): Promise<void>;
}
