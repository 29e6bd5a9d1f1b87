import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../../common/logger.js';
import { FleetRegistry } from '../../../../cloud-relay/fleet/fleet.js';
import { AlertEvaluator } from '../../../../cloud-relay/fleet/alerts/evaluator.js';
import { alertsSchema, type AlertsConfig } from '../../../../cloud-relay/fleet/alerts/rules.js';
import { compareVersions, parseVersion } from '../../../../cloud-relay/fleet/alerts/version.js';
import { RelayMetrics } from '../../../../cloud-relay/metrics.js';
import { SqliteRelayStore } from '../../../../cloud-relay/store/sqlite-store.js';
import { birthMsg, healthMsg, willMsg } from '../../../helpers/fleet-messages.js';

const T = 1_800_000_000_000;
const log = createLogger({ level: 'silent' });
const SITE = 'wh-1';
const AGENT = 'agent-1';
const opened: Array<{ ev: AlertEvaluator; store: SqliteRelayStore }> = [];
afterEach(async () => {
  for (const o of opened.splice(0)) {
    await o.ev.stop();
    await o.store.close();
  }
});

/** A real fleet registry and evaluator over an in-memory store, on a clock the test moves (no webhook: the log and the list). */
async function setup(rules: unknown[]) {
  const clock = { now: T };
  const store = new SqliteRelayStore({ path: ':memory:', dedupeWindowMs: 0, log });
  const fleet = new FleetRegistry({ store, metrics: new RelayMetrics(), log, staleAfterMs: 45_000, historySamples: 10, clock: () => clock.now });
  const config: AlertsConfig = alertsSchema.parse({ rules, evaluate_every: '1h' });
  const ev = new AlertEvaluator({ config, fleet, store, log, relayId: 'relay-test' });
  opened.push({ ev, store });
  await ev.start();
  const send = {
    birth: (boot: string, over: Record<string, unknown> = {}) => fleet.onPresence(SITE, AGENT, Buffer.from(JSON.stringify(birthMsg(boot, clock.now, over)))),
    will: (boot: string) => fleet.onPresence(SITE, AGENT, Buffer.from(JSON.stringify(willMsg(boot, clock.now)))),
    health: (h: object) => fleet.onHealth(SITE, AGENT, Buffer.from(JSON.stringify(h))),
  };
  const active = () => ev.list().active.map((a) => ({ rule: a.rule, labels: a.labels, value: a.value }));
  return { clock, ev, send, active, store };
}

describe('agent versions compared as numbers', () => {
  const cmp = (a: string, b: string) => Math.sign(compareVersions(parseVersion(a)!, parseVersion(b)!));
  it('orders by major, minor, patch numerically, a pre-release below its release, and refuses what is not a version', async () => {
    expect(cmp('0.10.0', '0.9.9')).toBe(1);
    expect(cmp('0.4.0', '0.4.0')).toBe(0);
    expect(cmp('0.3.12', '0.4.0')).toBe(-1);
    expect(cmp('v1.0', '1.0.0')).toBe(0);
    expect(cmp('0.4.0-rc.1', '0.4.0')).toBe(-1);
    expect(cmp('0.4.0-rc.2', '0.4.0-rc.10')).toBe(-1);
    expect(cmp('0.4.0+build.5', '0.4.0')).toBe(0);
    expect(parseVersion('latest')).toBeUndefined();
  });
});

describe('alert evaluator: each kind fires on its condition, once, and resolves once', () => {
  it('agent_offline: waits `for` from the will, fires once however often evaluated, resolves at a new birth; a stale agent counts as offline', async () => {
    const { clock, ev, send, active } = await setup([{ name: 'down', kind: 'agent_offline', for: '5m' }]);
    send.birth('b1');
    send.will('b1');
    clock.now += 5 * 60_000 - 1;
    ev.evaluateAll();
    expect(active()).toEqual([]);
    clock.now += 1;
    ev.evaluateAll();
    ev.evaluateAll();
    expect(active()).toEqual([{ rule: 'down', labels: {}, value: 'offline' }]);
    expect(ev.list().active[0]).toMatchObject({ started_at: T, fired_at: T + 300_000, resolved_at: null });
    send.birth('b2');
    expect(active()).toEqual([]);
    expect(ev.list().resolved).toEqual([expect.objectContaining({ rule: 'down', resolved_at: T + 300_000 })]);
    // Stale: no health for fleet.stale_after (45 s), then 5 min more.
    clock.now += 45_001;
    ev.evaluateAll();
    clock.now += 5 * 60_000;
    ev.evaluateAll();
    expect(active()).toEqual([{ rule: 'down', labels: {}, value: 'stale' }]);
    send.health(healthMsg('b2', clock.now, []));
    expect(active()).toEqual([]);
    expect(ev.list().resolved).toHaveLength(2);
  });

  it('an offline agent back before `for` ran out fires nothing', async () => {
    const { clock, ev, send, active } = await setup([{ name: 'down', kind: 'agent_offline', for: '5m' }]);
    send.birth('b1');
    send.will('b1');
    clock.now += 60_000;
    ev.evaluateAll();
    send.birth('b2');
    clock.now += 10 * 60_000;
    ev.evaluateAll();
    expect(active()).toEqual([]);
    expect(ev.list().resolved).toEqual([]);
  });

  it('oldest_pending_age: per stream, above the threshold at the latest health', async () => {
    const { send, active } = await setup([{ name: 'old', kind: 'oldest_pending_age', above: '30m' }]);
    send.birth('b1');
    send.health(healthMsg('b1', T, [{ stream: 'orders', pending: 5, oldestAgeMs: 30 * 60_000 }, { stream: 'stock', pending: 1, oldestAgeMs: 1_000 }]));
    expect(active()).toEqual([]);
    send.health(healthMsg('b1', T, [{ stream: 'orders', pending: 5, oldestAgeMs: 31 * 60_000 }, { stream: 'stock', pending: 1, oldestAgeMs: 40 * 60_000 }]));
    expect(active()).toEqual([
      { rule: 'old', labels: { stream: 'orders' }, value: 31 * 60_000 },
      { rule: 'old', labels: { stream: 'stock' }, value: 40 * 60_000 },
    ]);
    send.health(healthMsg('b1', T, [{ stream: 'orders', pending: 0, oldestAgeMs: null }, { stream: 'stock', pending: 1, oldestAgeMs: 41 * 60_000 }]));
    expect(active()).toEqual([{ rule: 'old', labels: { stream: 'stock' }, value: 41 * 60_000 }]);
  });

  it('collector_error: per collector in state error for `for` (backing-off does not count)', async () => {
    const { clock, ev, send, active } = await setup([{ name: 'coll', kind: 'collector_error', for: '15m' }]);
    send.birth('b1');
    const h = (states: [string, string][]) => send.health(healthMsg('b1', clock.now, [], { collectors: states.map(([name, state]) => ({ name, state })) }));
    h([['orders', 'error'], ['stock', 'backing-off']]);
    clock.now += 15 * 60_000;
    h([['orders', 'error'], ['stock', 'backing-off']]);
    expect(active()).toEqual([{ rule: 'coll', labels: { collector: 'orders' }, value: 'inbox not readable' }]);
    h([['orders', 'running'], ['stock', 'backing-off']]);
    expect(active()).toEqual([]);
    ev.evaluateAll();
    expect(ev.list().resolved).toHaveLength(1);
  });

  it('agent_version_below: from the birth, compared numerically; no version, no alert', async () => {
    const { send, active } = await setup([{ name: 'old-version', kind: 'agent_version_below', version: '0.10.0' }]);
    send.birth('b1', { agent_version: '0.9.3' });
    expect(active()).toEqual([{ rule: 'old-version', labels: {}, value: '0.9.3' }]);
    send.birth('b2', { agent_version: '0.10.0' });
    expect(active()).toEqual([]);
    send.birth('b3', { agent_version: undefined });
    expect(active()).toEqual([]);
  });

  it('disk_free_below: from health disk.free_bytes; a health without disk (agents before 0.4) says nothing', async () => {
    const { send, active } = await setup([{ name: 'disk', kind: 'disk_free_below', bytes: '2GiB' }]);
    send.birth('b1');
    const h = healthMsg('b1', T, []);
    send.health({ ...h, disk: { free_bytes: 2 * 1024 ** 3, total_bytes: 1e11 } });
    expect(active()).toEqual([]);
    send.health({ ...h, disk: { free_bytes: 1_000_000, total_bytes: 1e11 } });
    expect(active()).toEqual([{ rule: 'disk', labels: {}, value: 1_000_000 }]);
    const { disk: _disk, ...noDisk } = h;
    send.health(noDisk);
    expect(active()).toEqual([]);
  });

  it('the store keeps active alerts: a new evaluator on it does not fire again and still resolves', async () => {
    const { send, store, ev } = await setup([{ name: 'disk', kind: 'disk_free_below', bytes: '2GiB' }]);
    send.birth('b1');
    send.health({ ...healthMsg('b1', T, []), disk: { free_bytes: 5, total_bytes: 10 } });
    const first = ev.list().active;
    expect(first).toHaveLength(1);
    await ev.settled();
    expect(await store.loadAlerts(10)).toEqual(first);
  });
});

describe('alerts config', () => {
  it('reads durations and sizes, applies defaults, and names the key of a bad rule', async () => {
    const c = alertsSchema.parse({ webhook: { url: 'https://ops.example/hook' }, rules: [{ name: 'a', kind: 'disk_free_below', bytes: '2GiB' }] });
    expect(c).toMatchObject({ evaluate_every: 15_000, resolved_kept: 200, webhook: { timeout: 5_000, retry: { initial: 1_000, max: 300_000 }, queue: 10_000, headers: {} } });
    expect(c.rules[0]).toEqual({ name: 'a', kind: 'disk_free_below', bytes: 2 * 1024 ** 3, for: 0 });
    const bad = (v: unknown) => alertsSchema.safeParse(v).error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    expect(bad({ rules: [{ name: 'a', kind: 'agent_offline', for: 'soon' }] })).toMatch(/^rules\.0\.for: expected a duration/);
    expect(bad({ rules: [{ name: 'a', kind: 'agent_version_below', version: 'latest' }] })).toMatch(/^rules\.0\.version: expected a version/);
    expect(bad({ rules: [{ name: 'a', kind: 'agent_offline' }, { name: 'a', kind: 'collector_error' }] })).toMatch(/^rules\.1\.name: rule name "a" is used twice/);
    expect(bad({ rules: [{ name: 'a', kind: 'cpu_high' }] })).toMatch(/^rules\.0\.kind/);
    expect(bad({ webhook: { url: 'ftp://x' } })).toMatch(/^webhook\.url/);
  });
});
