import type { FastifyInstance } from 'fastify';
import type { RelayStore } from '../store/store.js';

/**
 * GET /api/sinks: per configured sink, its dead-letter count and oldest age, and its cursor on each
 * stream epoch it has reached (`behind`: seqs stored past the cursor, holes included). Stream
 * epochs the sink has not reached yet (no cursor) are not counted: `behind` is no upper bound while
 * a sink is starting or has more pending streams than it has taken up. From the store, so every
 * instance sharing it answers the same.
 */
export function registerSinkRoutes(app: FastifyInstance, store: RelayStore, sinks: readonly { name: string; type: string }[]): void {
  app.get('/api/sinks', async () => {
    const [stats, cursors] = await Promise.all([store.delivery.deadLetterStats(), store.delivery.cursors()]);
    const now = Date.now();
    return {
      sinks: sinks.map((s) => {
        const st = stats.find((x) => x.sink === s.name);
        const mine = cursors.filter((c) => c.sink === s.name);
        return {
          name: s.name,
          type: s.type,
          dead_letters: st?.count ?? 0,
          retrying: st?.retrying ?? 0,
          oldest_dead_letter_age_ms: st?.oldest_at == null ? null : Math.max(0, now - st.oldest_at),
          behind: mine.reduce((n, c) => n + Math.max(0, c.last_seq - c.delivered_seq), 0),
          streams: mine.map(({ sink: _s, ...c }) => ({ ...c, behind: Math.max(0, c.last_seq - c.delivered_seq) })),
        };
      }),
    };
  });
}
