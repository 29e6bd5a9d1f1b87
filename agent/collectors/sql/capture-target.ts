import type { Writer } from '../../host/writer.js';
import type { SchemaChangeListener } from '../../databases/schema-version.js';

/** Where every capture mode's records go, and how: the same for a table, a query or a SQL Server table. */
export interface CaptureTarget {
  writer: Writer;
  /** The collector's source (`sql:<name>`), first segment of every record id. */
  sourceId: string;
  stream: string;
  /** Rows per page (and per outbox transaction). */
  batchSize: number;
  /** Told when rows come with another schema version than the last captured (their records are flagged). */
  onSchemaChange?: SchemaChangeListener | undefined;
}
