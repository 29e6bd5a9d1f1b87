/**
 * The dashboard in a real browser (#9 acceptance): Debian's headless Chromium driven by
 * playwright-core against a real relay (a user and a token configured) whose embedded MQTT broker
 * receives presence and health from three simulated agents at two sites, published with mqtt.js
 * exactly as agents do (retained birth, retained will). Logs in, sees the fleet, sees one agent
 * turn offline live (its connection dropped: the broker publishes its will) without a reload,
 * opens its page with the backlog chart, and saves screenshots under test-artifacts/dashboard/.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { chromium, type Browser } from 'playwright-core';
import { createLogger } from '../../common/logger.js';
import { Relay } from '../../cloud-relay/relay.js';
import { hashPassword } from '../../cloud-relay/auth/password.js';
import { healthTopic, presenceTopic } from '../../common/wire-v2.js';
import { birthMsg, healthMsg, willMsg } from '../helpers/fleet-messages.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort } from '../helpers/net.js';
import { RelayTestAgent } from '../helpers/relay-agent.js';
import { batchV2 } from '../helpers/relay-wire.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard browser test skipped: ${CHROMIUM} is missing (sudo apt-get install -y chromium)`);

const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts/dashboard');
const PASSWORD = 'dash-board-Pw-42';
const TOKEN = 'dashboard-test-token-0123456789';
const AGENTS = [
  { site: 'wh-north', agent: 'agent-n1' },
  { site: 'wh-north', agent: 'agent-n2' },
  { site: 'wh-south', agent: 'agent-s1' },
] as const;

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });

describe.runIf(hasChromium)('dashboard in headless Chromium', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let relay: Relay;
  let browser: Browser;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    tmp = makeTempDir('dashboard-');
    // A webhook sink whose receiver is away (a closed port): one attempt, then dead-letter.
    const away = await freePort();
    relay = await Relay.start(
      {
        broker: 'embedded',
        embedded_broker: { host: '127.0.0.1', port: 0 },
        store: { path: join(tmp.dir, 'relay.db') },
        http: { host: '127.0.0.1', port: 0 },
        auth: { users: [{ name: 'alice', password_hash: await hashPassword(PASSWORD) }], tokens: [{ name: 'ops-ci', token: TOKEN }] },
        alerts: { rules: [{ name: 'agent-offline', kind: 'agent_offline' }] },
        sinks: [{ name: 'erp-webhook', type: 'webhook', url: `http://127.0.0.1:${away}/events`, poll: '50ms', max_attempts: 1 }],
      },
      logger,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
    });
  });

  afterAll(async () => {
    await browser?.close();
    for (const c of clients) await c.endAsync(true).catch(() => undefined);
    await relay?.stop();
    tmp?.cleanup();
  });

  /** An agent's MQTT session as the agent opens it: retained will, retained birth, then health messages. */
  async function agentOnline(site: string, agent: string, boot: string, pending: number[]): Promise<MqttClient> {
    const c = await mqtt.connectAsync(relay.brokerUrl, {
      clientId: `${site}-${agent}`,
      reconnectPeriod: 0,
      will: { topic: presenceTopic(site, agent), payload: Buffer.from(JSON.stringify(willMsg(boot, Date.now()))), qos: 1, retain: true },
    });
    clients.push(c);
    await c.publishAsync(presenceTopic(site, agent), JSON.stringify(birthMsg(boot, Date.now())), { qos: 1, retain: true });
    for (const p of pending) await c.publishAsync(healthTopic(site, agent), JSON.stringify(healthMsg(boot, Date.now(), [{ stream: 'orders', pending: p, oldestAgeMs: p ? p * 1_000 : null }])), { qos: 1 });
    return c;
  }

  it('401 without credentials on the API and the live channel; the bearer token opens them', async () => {
    expect((await fetch(`${relay.httpUrl}/api/agents`)).status).toBe(401);
    expect((await fetch(`${relay.httpUrl}/api/live`)).status).toBe(401);
    expect((await fetch(`${relay.httpUrl}/api/agents`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    const live = await fetch(`${relay.httpUrl}/api/live`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(live.status).toBe(200);
    expect(live.headers.get('content-type')).toMatch(/^text\/event-stream/);
    await live.body?.cancel();
  });

  it('logs in, shows two sites and three agents, turns one offline live without reload, opens its page with a chart', async () => {
    const conns = new Map<string, MqttClient>();
    for (const [i, a] of AGENTS.entries()) conns.set(a.agent, await agentOnline(a.site, a.agent, `boot-${a.agent}`, [0, 5 * (i + 1), 12 * (i + 1), 8 * (i + 1), 20 * (i + 1)]));
    await expect
      .poll(async () => ((await (await fetch(`${relay.httpUrl}/api/agents`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { agents: Array<{ backlog: unknown }> }).agents.filter((a) => a.backlog).length)
      .toBe(3);

    mkdirSync(ARTIFACTS, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Uncaught/.test(m.text())) pageErrors.push(m.text());
    });

    await page.goto(relay.httpUrl);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.getByLabel('User').fill('alice');
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#fleet').waitFor({ state: 'visible' });

    const rows = page.locator('tr[data-agent]');
    await expect.poll(() => rows.count()).toBe(3);
    expect(await page.locator('section.site h3').allTextContents()).toEqual([expect.stringMatching(/^wh-north/), expect.stringMatching(/^wh-south/)]);
    const stateOf = (a: string) => page.locator(`tr[data-agent="wh-north/${a}"] td[data-col="state"]`).textContent();
    expect(await stateOf('agent-n2')).toContain('online');
    await page.screenshot({ path: join(ARTIFACTS, 'fleet-online.png'), fullPage: true });

    // The Sinks panel: what one agent sends is dead-lettered by the away receiver, and the panel
    // (refreshed with the fleet) says so.
    const sender = await RelayTestAgent.connect(relay.brokerUrl, { site: 'wh-north', agent: 'agent-n1' });
    clients.push(sender.client);
    await sender.handshake(); // its warm-up batch (one event or more) is stored and dead-lettered too
    expect(await sender.sendV2(batchV2(1, 3, { site: 'wh-north', agent: 'agent-n1' }))).toMatchObject({ status: 'ok', upto: 3 });
    const sinkLine = page.locator('#sinks li[data-sink="erp-webhook"]');
    const deadShown = async () => Number((await sinkLine.textContent())?.match(/, (\d+) dead-lettered \(oldest /)?.[1] ?? 0);
    await expect.poll(async () => (await page.reload(), await sinkLine.waitFor(), await deadShown()), { timeout: 30_000 }).toBeGreaterThanOrEqual(4);
    const api = (await (await fetch(`${relay.httpUrl}/api/sinks`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { sinks: Array<{ name: string; dead_letters: number }> };
    expect(api.sinks).toEqual([expect.objectContaining({ name: 'erp-webhook', dead_letters: await deadShown() })]);
    expect(await sinkLine.textContent()).toMatch(/^erp-webhook \(webhook\) — \d+ behind, /);
    await page.locator('#fleet').waitFor({ state: 'visible' });

    // A marker on the window survives only if the page is not reloaded.
    await page.evaluate(() => ((globalThis as unknown as { __noReload: number }).__noReload = 42));
    // agent-n2's connection dies without a DISCONNECT: the broker publishes its will.
    conns.get('agent-n2')!.stream.destroy();
    await expect.poll(() => stateOf('agent-n2'), { timeout: 15_000 }).toContain('offline');
    expect(await stateOf('agent-n1')).toContain('online');
    expect(await page.evaluate(() => (globalThis as unknown as { __noReload?: number }).__noReload)).toBe(42);
    expect(await page.locator('#announce').textContent()).toContain('wh-north / agent-n2 is now offline');
    // The relay's alert rule fired, and the dashboard shows it without a reload.
    await expect.poll(() => page.locator('#alert-list li[data-alert="agent-offline"]').allTextContents(), { timeout: 10_000 }).toEqual([expect.stringContaining('wh-north / agent-n2')]);
    await page.screenshot({ path: join(ARTIFACTS, 'fleet-one-offline.png'), fullPage: true });

    // Filter narrows the table.
    await page.getByLabel('Filter').fill('south');
    await expect.poll(() => rows.count()).toBe(1);
    await page.getByLabel('Filter').fill('');
    await expect.poll(() => rows.count()).toBe(3);

    await page.getByRole('link', { name: 'agent-n2' }).click();
    await page.locator('#agent').waitFor({ state: 'visible' });
    expect(page.url()).toMatch(/#\/agents\/wh-north\/agent-n2$/);
    const line = page.locator('#chart-backlog path.line');
    await line.waitFor();
    expect(await line.getAttribute('d')).toMatch(/^M[\d.]+,[\d.]+(L[\d.]+,[\d.]+){4}$/);
    expect(await page.locator('#agent-h').textContent()).toContain('offline');
    expect(await page.locator('#coll-h + .table-wrap tbody tr').count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'agent-page.png'), fullPage: true });

    // A tablet in portrait: same page, still usable.
    await page.setViewportSize({ width: 768, height: 1024 });
    await page.goto(`${relay.httpUrl}/#/`);
    await expect.poll(() => rows.count()).toBe(3);
    await page.screenshot({ path: join(ARTIFACTS, 'fleet-tablet.png'), fullPage: true });

    expect(pageErrors).toEqual([]);
    await page.close();
  });
});
