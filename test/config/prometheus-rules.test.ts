import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { hasPromtool, promtool } from '../helpers/promtool.js';
import { createRelayPrometheus } from '../../cloud-relay/prometheus/registry.js';
import { FleetRegistry } from '../../cloud-relay/fleet/fleet.js';
import { RelayMetrics } from '../../cloud-relay/metrics.js';
import { SqliteRelayStore } from '../../cloud-relay/store/sqlite-store.js';
import { createLogger } from '../../common/logger.js';

/** Names of the metrics a relay registers (from its real registry, so a renamed metric fails here). */
function relayMetricNames(): Set<string> {
  const log = createLogger({ level: 'silent' });
  const store = new SqliteRelayStore({ path: ':memory:', dedupeWindowMs: 0, log });
  try {
    const metrics = new RelayMetrics();
    const fleet = new FleetRegistry({ store, metrics, log, staleAfterMs: 45_000, historySamples: 10 });
    return new Set(createRelayPrometheus(fleet, metrics).registry.getMetricsAsArray().map((m) => m.name));
  } finally {
    store.close();
  }
}

const DIR = resolve(import.meta.dirname, '../../config/prometheus');
const RULES = join(DIR, 'erp-edge-alerts.yml');

describe.runIf(hasPromtool())('shipped Prometheus alerting rules (config/prometheus)', () => {
  it('pass promtool check rules', () => {
    const r = promtool(['check', 'rules', RULES]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status, r.output).toBe(0);
  });

  it('fire after their `for:` and not before (promtool test rules)', () => {
    const r = promtool(['test', 'rules', 'erp-edge-alerts.test.yml'], undefined, DIR);
    expect(r.status, r.output).toBe(0);
  });

  it('cover offline, backlog age, collector in error and version, and only use metrics the relay exports', () => {
    const doc = parse(readFileSync(RULES, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] };
    const rules = doc.groups.flatMap((g) => g.rules);
    expect(rules.map((x) => x.alert)).toEqual(
      expect.arrayContaining(['ErpEdgeAgentDown', 'ErpEdgeBacklogTooOld', 'ErpEdgeCollectorInError', 'ErpEdgeAgentVersionTooOld']),
    );
    const exported = relayMetricNames();
    expect(exported.has('erp_edge_agent_up')).toBe(true);
    for (const x of rules) for (const m of x.expr.match(/erp_edge_[a-z_]+/g) ?? []) expect(exported.has(m), `${x.alert} uses ${m}`).toBe(true);
  });
});
