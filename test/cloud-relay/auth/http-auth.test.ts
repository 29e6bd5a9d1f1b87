/**
 * The relay's auth end to end over HTTP (#9 item 9): 401 without credentials on /api/* and the
 * live channel, bearer tokens, login sessions, protected metrics; and the relay's log lines,
 * captured at trace level, never contain the token, the password or the session id.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { createLogger } from '../../../common/logger.js';
import { hashPassword } from '../../../cloud-relay/auth/password.js';
import { relayHarness } from '../../helpers/relay-harness.js';
import { SseReader } from '../../helpers/sse.js';
import { birthMsg, healthMsg, willMsg } from '../../helpers/fleet-messages.js';
import type { FleetChange, FleetSnapshot } from '../../../cloud-relay/fleet/feed.js';

const TOKEN = 'tok-5f0c1e7a9b2d4c6e8f01';
const PASSWORD = 'pw-Zq8!correct-horse';
const lines: string[] = [];
const logger = createLogger({ level: 'trace', destination: { write: (s: string) => void lines.push(s) } });
const h = relayHarness(logger);
let hash = '';

beforeEach(async () => {
  lines.length = 0;
  hash ||= await hashPassword(PASSWORD);
  h.setup();
});
afterEach(() => h.cleanup());

const auth = (over: Record<string, unknown> = {}) => ({
  auth: { users: [{ name: 'alice', password_hash: hash }], tokens: [{ name: 'ops-ci', token: TOKEN }], ...over },
});
const bearer = { authorization: `Bearer ${TOKEN}` };

async function login(url: string, password: string): Promise<Response> {
  return fetch(`${url}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'alice', password }) });
}

describe('relay auth over HTTP', () => {
  it('401 JSON without credentials on /api/* and /api/live; 200 with the bearer token; dashboard, /metrics and /healthz open', async () => {
    const relay = await h.startRelay(auth());
    for (const path of ['/api/agents', '/api/sites', '/api/streams', '/api/stats', '/api/me', '/api/live', '/api/agents/s/a', '/%61pi/agents']) {
      const res = await fetch(`${relay.httpUrl}${path}`);
      expect(res.status, path).toBe(401);
      expect(await res.json()).toEqual({ error: 'authentication required' });
    }
    expect((await fetch(`${relay.httpUrl}/api/agents`, { headers: { authorization: `Bearer ${TOKEN}x` } })).status).toBe(401);
    const ok = await fetch(`${relay.httpUrl}/api/agents`, { headers: bearer });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ agents: [] });
    expect(await (await fetch(`${relay.httpUrl}/api/me`, { headers: bearer })).json()).toMatchObject({ user: 'ops-ci', kind: 'token' });
    const live = await SseReader.open(`${relay.httpUrl}/api/live`, bearer);
    expect(live.status).toBe(200);
    expect((await live.next()).event).toBe('snapshot');
    live.close();
    for (const path of ['/', '/app.js', '/style.css', '/metrics', '/healthz']) expect((await fetch(`${relay.httpUrl}${path}`)).status, path).toBe(200);
  });

  it('login sets an HttpOnly SameSite=Strict session cookie that opens the API and live channel; a wrong password is 401 and slowed; logout ends the session and its stream', async () => {
    const relay = await h.startRelay(auth(), { live: { heartbeatMs: 200 } });
    const t0 = Date.now();
    const bad = await login(relay.httpUrl, 'wrong-password');
    expect(bad.status).toBe(401);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(240);
    const res = await login(relay.httpUrl, PASSWORD);
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^erp_edge_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/);
    const sid = cookie.split(';')[0]!;
    expect(await (await fetch(`${relay.httpUrl}/api/me`, { headers: { cookie: sid } })).json()).toMatchObject({ user: 'alice', kind: 'user' });
    expect((await fetch(`${relay.httpUrl}/api/agents`, { headers: { cookie: sid } })).status).toBe(200);
    const live = await SseReader.open(`${relay.httpUrl}/api/live`, { cookie: sid });
    expect((await live.next()).event).toBe('snapshot');
    let liveEnded = false;
    void live.ended.then(() => (liveEnded = true));
    expect((await fetch(`${relay.httpUrl}/api/logout`, { method: 'POST', headers: { cookie: sid } })).status).toBe(200);
    // The open live stream ends with the session (checked at its next heartbeat).
    await expect.poll(() => liveEnded, { timeout: 5_000 }).toBe(true);
    expect((await fetch(`${relay.httpUrl}/api/me`, { headers: { cookie: sid } })).status).toBe(401);

    // A malformed login body (a JSON parser's message could quote it) and a token in a query string.
    const broken = await fetch(`${relay.httpUrl}/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"user":"alice","password":"${PASSWORD}` });
    expect(broken.status).toBe(400);
    expect((await fetch(`${relay.httpUrl}/api/agents?token=${TOKEN}`)).status).toBe(401);

    // Nothing secret in any log line, at trace level, including the request lines.
    const log = lines.join('');
    expect(log).toContain('"msg":"login"');
    expect(log).toContain('"msg":"login failed"');
    expect(log).toContain('"msg":"http request"');
    for (const secret of [TOKEN, PASSWORD, 'wrong-password', sid.split('=')[1]!]) expect(log).not.toContain(secret);
  });

  it('protect_metrics: /metrics and /healthz need the token too', async () => {
    const relay = await h.startRelay(auth({ protect_metrics: true }));
    expect((await fetch(`${relay.httpUrl}/metrics`)).status).toBe(401);
    expect((await fetch(`${relay.httpUrl}/healthz`)).status).toBe(401);
    expect((await fetch(`${relay.httpUrl}/metrics`, { headers: bearer })).status).toBe(200);
  });

  it('auth.disabled: open, and the start says so loudly', async () => {
    const relay = await h.startRelay({ auth: { disabled: true } });
    expect((await fetch(`${relay.httpUrl}/api/agents`)).status).toBe(200);
    expect(lines.join('')).toMatch(/"level":40.*AUTH DISABLED/);
  });
});

describe('live channel', () => {
  it('a snapshot first, then presence, health and stale changes as they happen', async () => {
    const relay = await h.startRelay({ ...auth(), fleet: { stale_after: 400 } }, { live: { stateCheckMs: 100 } });
    const mq = await mqtt.connectAsync(relay.brokerUrl, { clientId: 'live-test', reconnectPeriod: 0 });
    try {
      const now = Date.now();
      await mq.publishAsync('erp-edge/v2/wh-a/agent-1/status', JSON.stringify(birthMsg('boot-1', now)), { qos: 1, retain: true });
      const api = async () => ((await (await fetch(`${relay.httpUrl}/api/agents`, { headers: bearer })).json()) as { agents: unknown[] }).agents;
      await expect.poll(api).toHaveLength(1);

      const live = await SseReader.open(`${relay.httpUrl}/api/live`, bearer);
      const snap = (await live.next((e) => e.event === 'snapshot')).data as FleetSnapshot;
      expect(snap.agents).toEqual(await api());
      expect(snap.sites.map((s) => s.site)).toEqual(['wh-a']);

      await mq.publishAsync('erp-edge/v2/wh-a/agent-1/health', JSON.stringify(healthMsg('boot-1', Date.now(), [{ stream: 'orders', pending: 7, oldestAgeMs: 5_000 }])), { qos: 1 });
      const health = ((await live.next((e) => e.event === 'changes')).data as FleetChange[])[0]!;
      expect(health).toMatchObject({ reason: 'health', agent: { site: 'wh-a', agent: 'agent-1', state: 'online', backlog: { pending: 7 } }, site: { site: 'wh-a', pending: 7 } });

      // No message at all: the timer notices the agent turning stale.
      const stale = ((await live.next((e) => e.event === 'changes', 5_000)).data as FleetChange[])[0]!;
      expect(stale).toMatchObject({ reason: 'state', agent: { state: 'stale' } });

      await mq.publishAsync('erp-edge/v2/wh-a/agent-1/status', JSON.stringify(willMsg('boot-1', Date.now())), { qos: 1, retain: true });
      const off = ((await live.next((e) => e.event === 'changes')).data as FleetChange[])[0]!;
      expect(off).toMatchObject({ reason: 'presence', agent: { state: 'offline', online: false }, site: { agents: { offline: 1 } } });
      live.close();
    } finally {
      await mq.endAsync();
    }
  });
});
