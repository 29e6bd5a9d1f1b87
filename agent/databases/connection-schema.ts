import { z } from 'zod';
import { durationMs } from '../../common/duration.js';
import type { ConnectOptions } from './dialect.js';
import type { MssqlConnectOptions } from './mssql-runner.js';
import { checkTimeZone } from './time-zone.js';

/**
 * How a collector that reads SQL names its database, in its config: the same keys, defaults and
 * secret convention (`password: ${VAR}`) wherever a connection is configured (the sql collector's
 * `connection:`, a schedule job's `sql:`). Zod only: importing it loads no driver.
 */

export const sqlDriver = z.enum(['pg', 'mysql', 'mssql']);
export type SqlDriver = z.output<typeof sqlDriver>;

/** An IANA zone name Intl knows (e.g. `Europe/Berlin`). */
export const ianaZone = z.string().min(1).superRefine((zone, ctx) => {
  try {
    checkTimeZone(zone);
  } catch {
    ctx.addIssue({ code: 'custom', message: `unknown IANA time zone ${JSON.stringify(zone)} (e.g. Europe/Berlin, UTC)` });
  }
});

/** The connection's keys, to spread into a strictObject beside a collector's own. */
export const connectionFields = {
  host: z.string().min(1).default('127.0.0.1'),
  port: z.number().int().min(1).max(65_535).optional(),
  database: z.string().min(1),
  user: z.string().min(1),
  /** Use `${VAR}`: the password is never written to the config file or a log. */
  password: z.string().default(''),
  /** Pooled connections per collector. */
  pool_size: z.number().int().min(1).max(20).default(2),
  connect_timeout: durationMs.default(10_000),
  /** SQL Server only (TLS on the TDS connection). */
  encrypt: z.boolean().default(true),
  /** SQL Server only: accept a self-signed server certificate (test servers; not for production). */
  trust_server_certificate: z.boolean().default(false),
};

export const connectionSchema = z.strictObject(connectionFields);
export type ConnectionConfig = z.output<typeof connectionSchema>;

/** Where a connection's settings do not fit its driver (in a superRefine); `path`: where the connection's keys sit. */
export function connectionIssues(driver: SqlDriver, c: Pick<ConnectionConfig, 'encrypt' | 'trust_server_certificate'>, ctx: z.RefinementCtx, path: (string | number)[]): void {
  // Non-default TLS settings on another driver would be silently ignored: refused instead.
  if (driver !== 'mssql' && !c.encrypt) ctx.addIssue({ code: 'custom', path: [...path, 'encrypt'], message: `${[...path, 'encrypt'].join('.')} is a SQL Server setting (driver: mssql)` });
  if (driver !== 'mssql' && c.trust_server_certificate) ctx.addIssue({ code: 'custom', path: [...path, 'trust_server_certificate'], message: `${[...path, 'trust_server_certificate'].join('.')} is a SQL Server setting (driver: mssql)` });
}

/** The dialects' connect options for a configured connection; `timeZone`: the database server's clock. */
export function connectOptions(c: ConnectionConfig, timeZone: string | undefined): MssqlConnectOptions {
  const opts: ConnectOptions = { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, poolSize: c.pool_size, connectTimeoutMs: c.connect_timeout, timeZone };
  return { ...opts, encrypt: c.encrypt, trustServerCertificate: c.trust_server_certificate };
}
