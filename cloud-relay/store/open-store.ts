import type { Logger } from '../../common/logger.js';
import type { ResolvedRelayConfig } from '../config.js';
import { PostgresRelayStore } from './postgres-store.js';
import { SqliteRelayStore } from './sqlite-store.js';
import type { RelayStore } from './store.js';

export interface OpenStoreOptions {
  dedupeWindowMs: number;
  log: Logger;
  clock?: (() => number) | undefined;
}

/** The store `store.type` names (`sqlite` when absent, as release 0.1 configs say nothing). */
export async function openRelayStore(cfg: ResolvedRelayConfig['store'], o: OpenStoreOptions): Promise<RelayStore> {
  const clock = o.clock ? { clock: o.clock } : {};
  if (cfg.type === 'postgres') {
    return PostgresRelayStore.open({
      url: cfg.url,
      host: cfg.host,
      port: cfg.port,
      database: cfg.database,
      user: cfg.user,
      password: cfg.password,
      poolSize: cfg.pool_size,
      schema: cfg.schema,
      statementTimeoutMs: cfg.statement_timeout,
      dedupeWindowMs: o.dedupeWindowMs,
      log: o.log,
      ...clock,
    });
  }
  return new SqliteRelayStore({ path: cfg.path, synchronous: cfg.synchronous, dedupeWindowMs: o.dedupeWindowMs, log: o.log, ...clock });
}
