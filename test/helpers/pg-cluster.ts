/**
 * A PostgreSQL cluster of the test's own, for tests that stop the server or need special settings
 * (e.g. wal_level=logical) without touching the machine's shared one. Shared with the bench, which
 * owns it (bench/lib/pg-cluster.ts); tests run it without fsync.
 */
import { startPgCluster as startCluster, type BenchPgCluster } from '../../bench/lib/pg-cluster.js';

export type PgCluster = BenchPgCluster;

export function startPgCluster(settings: Record<string, string> = {}): Promise<PgCluster> {
  return startCluster({ fsync: 'off', ...settings });
}
