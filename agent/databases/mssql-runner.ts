import type { ConnectOptions } from './dialect.js';
import type { MssqlColumn, Statement } from './dialects/mssql-statements.js';

/**
 * What the SQL Server capture needs from a connection: run a statement built by
 * dialects/mssql-statements.ts, run several in one snapshot-isolation transaction, and read a
 * table's column and key metadata. dialects/mssql.ts implements it with the `mssql` package; the
 * sql collector's capture engine (mssql-capture.ts) and checks (mssql-check.ts) see only this, so the tests
 * drive them with a scripted fake (SQL Server cannot run where the tests run).
 */

/** Rows as the driver returns them: column name → tedious value (bigint as decimal text, binary as Buffer). */
export type MssqlRows = Record<string, unknown>[];

export type MssqlQuery = (stmt: Statement) => Promise<MssqlRows>;

/**
 * Runs a statement and hands its rows to `onPage` in pages of `pageSize` (the last one shorter;
 * none for no rows), reading no further until `onPage` resolves: constant memory for statements
 * without TOP (a Change Tracking or CDC poll). An `onPage` that throws stops the statement and
 * the error is passed on.
 */
export type MssqlStream = (stmt: Statement, pageSize: number, onPage: (rows: MssqlRows) => Promise<void>) => Promise<void>;

/** Statements on the pool, or on one transaction's connection. */
export interface MssqlSession {
  query: MssqlQuery;
  stream: MssqlStream;
}

export interface MssqlRunner extends MssqlSession {
  /**
   * Runs `fn` in one transaction at SNAPSHOT isolation on one connection (SNAPSHOT_TRANSACTION):
   * committed when `fn` resolves, rolled back when it throws (and the error passed on).
   */
  inSnapshotTransaction<T>(fn: (session: MssqlSession) => Promise<T>): Promise<T>;
  /** The table's columns in ordinal order (`table` as configured: `dbo.T` or `T`); empty when there is no such table. */
  columns(table: string): Promise<MssqlColumn[]>;
  /** The primary key's columns in key order; empty when the table has none. */
  primaryKey(table: string): Promise<string[]>;
  /** Ends the pool. */
  close(): Promise<void>;
}

export interface MssqlConnectOptions extends ConnectOptions {
  encrypt: boolean;
  trustServerCertificate: boolean;
}
