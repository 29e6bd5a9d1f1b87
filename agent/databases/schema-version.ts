import { createHash } from 'node:crypto';

/**
 * Schema version of a table as read (issue #8: every SQL record carries one): 16 hex digits of the
 * SHA-256 of the ordered column descriptions the dialect gives (`name:type`, with the type's
 * modifiers, since they change the values). A column added, dropped, renamed, retyped or reordered
 * changes it. The engine keeps the version last captured per table in its checkpoint; the first
 * page read with another one is logged, counted and its records flagged `schema_changed`.
 */
export function schemaVersion(columns: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(columns)).digest('hex').slice(0, 16);
}

/** Whether rows read with `current` follow a capture made with another schema (`previous` unknown: no). */
export function schemaChanged(previous: string | undefined, current: string | undefined): boolean {
  return previous !== undefined && current !== undefined && previous !== current;
}

/** Told when a table's records come with another schema version than the last captured. */
export type SchemaChangeListener = (table: string, from: string, to: string) => void;

/** schemaChanged, telling `listener` when so. */
export function noteSchema(table: string, previous: string | undefined, current: string | undefined, listener: SchemaChangeListener | undefined): boolean {
  if (!schemaChanged(previous, current)) return false;
  listener?.(table, previous!, current!);
  return true;
}
