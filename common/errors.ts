/**
 * Typed errors with a stable code (as undici's UND_ERR_*), so callers and logs
 * can match on `code` rather than on message text.
 */
export type ErrorCode =
  | 'ERP_CONFIG_INVALID'
  | 'ERP_CONFIG_UNREADABLE'
  | 'ERP_CONFIG_ENV_MISSING'
  | 'ERP_CONFIG_EXISTS'
  | 'ERP_OUTBOX_CLOSED'
  | 'ERP_OUTBOX_SEQ'
  | 'ERP_OUTBOX_SCHEMA'
  | 'ERP_OUTBOX_FULL'
  /** The file system holding the outbox has no room (SQLITE_FULL): nothing was written. */
  | 'ERP_OUTBOX_DISK_FULL'
  /** The SQLite binding asked for (ERP_EDGE_SQLITE) cannot load in this Node (node:sqlite needs >= 22.13). */
  | 'ERP_OUTBOX_SQLITE'
  | 'ERP_RECORD_INVALID'
  | 'ERP_RECORD_TOO_LARGE'
  | 'ERP_COLLECTOR_LOAD'
  | 'ERP_COLLECTOR_FAILED'
  | 'ERP_AGENT_RUNNING'
  | 'ERP_CONTROL_FAILED'
  | 'ERP_STORE_SCHEMA'
  // the relay's PostgreSQL store cannot be reached or refused the login (names host and database, never the password)
  | 'ERP_STORE_UNAVAILABLE'
  | 'ERP_PORT_IN_USE'
  | 'ERP_WIRE_INVALID'
  // a relay mapping could not turn an event into its canonical shape: context names the field and the reason
  | 'ERP_MAPPING_FAILED'
  | 'ERP_FILE_MALFORMED'
  // scanner-ws replies (docs/scanner-ws.md): a message that is not a scan, a device the token is
  // not for, a scan not recorded for another reason (the agent stopping): retry later
  | 'ERP_SCAN_INVALID'
  | 'ERP_SCAN_FORBIDDEN'
  | 'ERP_SCAN_UNAVAILABLE'
  | 'ERP_COLLECTOR_UNKNOWN'
  | 'ERP_BENCH_UNAVAILABLE'
  | 'ERP_QUERY_TOO_MANY_ROWS'
  | 'ERP_TLS_FILE'
  | 'ERP_TLS_CERT_DATES'
  | 'ERP_BROKER_TLS'
  | 'ERP_BROKER_AUTH'
  | 'ERP_SERVICE_INSTALL'
  // a sink could not deliver a batch (HTTP status, timeout, broker down): retried, then dead-lettered
  | 'ERP_SINK_DELIVERY';

export class ErpEdgeError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, context: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ErpEdgeError';
    this.code = code;
    this.context = context;
  }
}

export function isErpEdgeError(err: unknown, code?: ErrorCode): err is ErpEdgeError {
  return err instanceof ErpEdgeError && (code === undefined || err.code === code);
}

/** Port clashes are the most common start-up failure at a site: name the setting to change. */
export function portInUseError(host: string, port: number, setting: string, cause: unknown): ErpEdgeError {
  return new ErpEdgeError(
    'ERP_PORT_IN_USE',
    `port ${port} on ${host} is already in use; change \`${setting}\` in the config to a free port`,
    { host, port, setting },
    { cause },
  );
}
