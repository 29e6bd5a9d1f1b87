import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { RelayConfig } from '../../cloud-relay/config.js';
import { Relay, type RelayStartOptions } from '../../cloud-relay/relay.js';
import type { RelayStats } from '../../cloud-relay/metrics.js';
import { createLogger, type Logger } from '../../common/logger.js';
import { RelayTestAgent } from './relay-agent.js';
import { makeTempDir } from './tmp.js';
import { AGENT, SITE } from './relay-wire.js';
import type { StoredEvent } from '../../cloud-relay/store/store.js';

export async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

/** An event as GET /api/events serves it. */
export type ServedEvent = StoredEvent;

/**
 * Relays (embedded broker, free ports, a temp store) and test agents for one test file: call
 * `setup()` in beforeEach and `cleanup()` in afterEach (agents first, so the embedded broker's
 * close does not wait on them).
 */
export function relayHarness(logger: Logger = createLogger({ level: 'silent' })) {
  let tmp: ReturnType<typeof makeTempDir> = { dir: '', cleanup: () => undefined };
  const relays: Relay[] = [];
  const agents: RelayTestAgent[] = [];

  const h = {
    setup(): void {
      tmp = makeTempDir('erp-edge-relay-');
    },
    get dir(): string {
      return tmp.dir;
    },
    config(over: Partial<RelayConfig> = {}): RelayConfig {
      return {
        id: `relay-${randomUUID()}`,
        log_level: 'info',
        broker: 'embedded',
        embedded_broker: { host: '127.0.0.1', port: 0 },
        store: { path: join(tmp.dir, 'relay', 'relay.db'), synchronous: 'FULL' },
        http: { host: '127.0.0.1', port: 0 },
        // The relay refuses to start without auth; these tests exercise other parts (auth: test/cloud-relay/auth).
        auth: { disabled: true },
        ...over,
      };
    },
    async startRelay(over: Partial<RelayConfig> = {}, opts: RelayStartOptions = {}): Promise<Relay> {
      const relay = await Relay.start(h.config(over), logger, opts);
      relays.push(relay);
      return relay;
    },
    async stopRelay(relay: Relay): Promise<void> {
      relays.splice(relays.indexOf(relay), 1);
      await relay.stop();
    },
    async connectAgent(relay: Relay, o: Parameters<typeof RelayTestAgent.connect>[1] = {}): Promise<RelayTestAgent> {
      const agent = await RelayTestAgent.connect(relay.brokerUrl, o);
      agents.push(agent);
      await agent.handshake();
      return agent;
    },
    async stats(relay: Relay): Promise<RelayStats> {
      const { status, body } = await getJson<RelayStats>(`${relay.httpUrl}/api/stats`);
      if (status !== 200) throw new Error(`GET /api/stats: ${status}`);
      return body;
    },
    async events(relay: Relay, stream = 'orders', extra = ''): Promise<{ epoch: string | null; events: ServedEvent[]; next_after: number }> {
      const { status, body } = await getJson<{ epoch: string | null; events: ServedEvent[]; next_after: number }>(
        `${relay.httpUrl}/api/events?site=${SITE}&agent=${AGENT}&stream=${stream}${extra}`,
      );
      if (status !== 200) throw new Error(`GET /api/events: ${status}`);
      return body;
    },
    /** /api/streams rows of the test's streams (warm-up streams left out). */
    async streams(relay: Relay): Promise<Array<Record<string, unknown> & { stream: string; epoch: string }>> {
      const { body } = await getJson<{ streams: Array<Record<string, unknown> & { stream: string; epoch: string }> }>(`${relay.httpUrl}/api/streams`);
      return body.streams.filter((s) => !s.stream.startsWith('warmup-'));
    },
    async cleanup(): Promise<void> {
      for (const a of agents.splice(0)) await a.close().catch(() => undefined);
      for (const r of relays.splice(0)) await r.stop();
      tmp.cleanup();
    },
  };
  return h;
}
