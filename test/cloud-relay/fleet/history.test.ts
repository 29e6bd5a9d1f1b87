import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentDetail } from '../../../cloud-relay/fleet/fleet.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import { SqliteRelayStore } from '../../../cloud-relay/store/sqlite-store.js';
import { createLogger } from '../../../common/logger.js';
import { waitFor } from '../../helpers/net.js';
import { getJson, relayHarness } from '../../helpers/relay-harness.js';
import { AGENT, SITE } from '../../helpers/relay-wire.js';
import { birthMsg, healthMsg } from '../../helpers/fleet-messages.js';
import { makeTempDir } from '../../helpers/tmp.js';

const WAIT_MS = 15_000;
const T = 1_800_000_000_000;

describe('fleet history: a bounded, persisted sample per health message', () => {
  const h = relayHarness();
  beforeEach(() => h.setup());
  afterEach(() => h.cleanup());

  const detail = (relay: Relay, query = '') => getJson<AgentDetail>(`${relay.httpUrl}/api/agents/${SITE}/${AGENT}${query}`);

  it('keeps the last history_samples samples with the health figures, filters by ?since=, and the store reopened keeps them', async () => {
    let now = T;
    const relay = await h.startRelay({ fleet: { history_samples: 3 } }, { clock: () => now });
    const agent = await h.connectAgent(relay);
    await agent.presence(birthMsg('boot-1', T), false);
    for (let i = 1; i <= 5; i++) {
      now = T + i * 15_000;
      await agent.health(
        healthMsg('boot-1', now, [
          { stream: 'orders', pending: i * 10, oldestAgeMs: i * 1_000 },
          { stream: 'scans', pending: i, oldestAgeMs: null },
        ], { collectors: [{ name: 'orders', state: i >= 4 ? 'error' : 'running' }], rss: 1_000_000 * i, rates: [i, i / 2] }),
      );
      const at = now;
      await waitFor(`health #${i}`, async () => (await detail(relay)).body.health_at === at, WAIT_MS);
    }
    const expected = [3, 4, 5].map((i) => ({
      at: T + i * 15_000,
      pending: i * 11,
      oldest_pending_age_ms: i * 1_000,
      capture_rate: i,
      forward_rate: i / 2,
      collectors_in_error: i >= 4 ? 1 : 0,
      rss: 1_000_000 * i,
    }));
    expect((await detail(relay)).body.history).toEqual(expected);
    expect((await detail(relay, `?since=${T + 60_000}`)).body.history).toEqual(expected.slice(1));
    expect((await detail(relay, '?since=soon')).status).toBe(400);

    await agent.close();
    await h.stopRelay(relay);
    // The store holds exactly the last 3 rows of the agent: older rows are deleted as newer come.
    const db = new Database(join(h.dir, 'relay', 'relay.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM agent_history').get()).toEqual({ n: 3 });
    db.close();

    const again = await h.startRelay({ fleet: { history_samples: 3 } }, { clock: () => now });
    expect((await detail(again)).body.history).toEqual(expected);
  });
});
