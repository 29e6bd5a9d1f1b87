import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRelayConfig, relayConfigSchema, resolveRelayConfig } from '../../cloud-relay/config.js';
import { parseConfigText } from '../../common/config-file.js';
import { configFailure } from '../helpers/config-failure.js';

const BASE = ['broker: embedded', 'store:', '  path: relay.db', 'auth:', '  disabled: true'];
const parse = (lines: string[]) => parseConfigText([...BASE, ...lines, ''].join('\n'), 'relay.yaml', relayConfigSchema, {});


describe('relay config', () => {
  it('defaults: both wire versions, 1 MiB records, a 7-day de-duplication window', () => {
    const cfg = parse([]);
    expect(cfg.wire_versions).toEqual([1, 2]);
    expect(cfg.limits.max_record_bytes).toBe(1024 * 1024);
    expect(cfg.dedupe.window).toBe(7 * 86_400_000);
  });

  it('reads wire_versions, limits.max_record_bytes and dedupe.window in their units', () => {
    const cfg = parse(['wire_versions: [2, 1]', 'limits:', '  max_record_bytes: 64KiB', 'dedupe:', '  window: 0']);
    expect(cfg.wire_versions).toEqual([1, 2]);
    expect(cfg.limits.max_record_bytes).toBe(65_536);
    expect(cfg.dedupe.window).toBe(0);
    expect(parse(['wire_versions: [1]', 'dedupe:', '  window: 36h']).dedupe.window).toBe(36 * 3_600_000);
  });

  it('refuses an empty, unknown or repeated wire version, with the line', () => {
    expect(configFailure(() => parse(['wire_versions: []']))).toMatch(/relay\.yaml:6:\d+ wire_versions: list at least one wire version/);
    expect(configFailure(() => parse(['wire_versions: [1, 3]']))).toMatch(/wire_versions\[1\]/);
    expect(configFailure(() => parse(['wire_versions: [2, 2]']))).toMatch(/list each wire version once/);
    expect(configFailure(() => parse(['dedupe:', '  window: soon']))).toMatch(/dedupe\.window/);
    expect(configFailure(() => parse(['limits:', '  max_record_bytes: 0']))).toMatch(/limits\.max_record_bytes/);
  });

  it('fleet: stale after 45 s and 240 history samples by default; reads durations; refuses 0', () => {
    expect(parse([]).fleet).toEqual({ stale_after: 45_000, history_samples: 240 });
    expect(parse(['fleet:', '  stale_after: 2m', '  history_samples: 60']).fleet).toEqual({ stale_after: 120_000, history_samples: 60 });
    expect(configFailure(() => parse(['fleet:', '  stale_after: 0']))).toMatch(/fleet\.stale_after/);
    expect(configFailure(() => parse(['fleet:', '  history_samples: 0']))).toMatch(/fleet\.history_samples/);
  });

  it('resolveRelayConfig applies the same defaults to a config built in code and refuses a bad one', () => {
    const cfg = resolveRelayConfig({ broker: 'embedded', store: { path: '/tmp/x.db' }, auth: { disabled: true } });
    expect(cfg).toMatchObject({ wire_versions: [1, 2], http: { port: 8470 }, dedupe: { window: 604_800_000 } });
    // A resolved config resolves to itself (Relay.start may be given either).
    expect(resolveRelayConfig(cfg)).toEqual(cfg);
    expect(configFailure(() => resolveRelayConfig({ broker: 'embedded', store: { path: '/tmp/x.db' }, auth: { disabled: true }, wire_versions: [] }))).toMatch(/wire_versions/);
  });

  it('the example config loads', () => {
    const cfg = loadRelayConfig(resolve(import.meta.dirname, '../../config/relay.example.yaml'));
    expect(cfg.wire_versions).toEqual([1, 2]);
    expect(cfg.store.type === 'postgres' ? '' : cfg.store.path).toMatch(/var\/relay\/relay\.db$/);
  });

  it('alerts: none by default; the commented alerts block of the example loads once uncommented; a bad rule is named with its line', () => {
    expect(parse([]).alerts).toMatchObject({ rules: [], evaluate_every: 15_000 });
    const example = readFileSync(resolve(import.meta.dirname, '../../config/relay.example.yaml'), 'utf8');
    const block = example.slice(example.indexOf('#alerts:')).split('\n').filter((l) => l.startsWith('#')).map((l) => l.slice(1));
    const cfg = parse(block);
    expect(cfg.alerts.rules.map((r) => r.kind)).toEqual(['agent_offline', 'oldest_pending_age', 'collector_error', 'agent_version_below', 'disk_free_below']);
    expect(cfg.alerts.webhook).toMatchObject({ url: 'https://ops.example/hook', timeout: 5_000, retry: { initial: 1_000, max: 300_000 } });
    expect(configFailure(() => parse(['alerts:', '  rules:', '    - { name: x, kind: disk_free_below, bytes: lots }']))).toMatch(/alerts\.rules\[0\]\.bytes/);
  });

  it('store: the release 0.1 form is SQLite; type postgres takes a URL or host fields, secrets from ${VAR}; shared_group needs postgres', () => {
    const text = (lines: string[]) => [...lines, 'auth:', '  disabled: true', ''].join('\n');
    const old = parse([]);
    expect(old.store).toEqual({ path: 'relay.db', synchronous: 'FULL' });
    const pgCfg = parseConfigText(
      text(['broker:', '  url: mqtt://broker:1883', '  shared_group: relays', 'store:', '  type: postgres', '  host: db.example', '  user: relay', '  password: ${PGPASS}']),
      'relay.yaml',
      relayConfigSchema,
      { PGPASS: 'from-env' },
    );
    expect(pgCfg.store).toEqual({ type: 'postgres', host: 'db.example', user: 'relay', password: 'from-env', pool_size: 10, schema: 'erp_edge_relay', statement_timeout: 30_000 });
    expect(pgCfg.broker).toMatchObject({ shared_group: 'relays' });
    expect(pgCfg.ingest.gap_wait).toBe(200);
    expect(configFailure(() => parseConfigText(text(['broker: embedded', 'store:', '  type: postgres']), 'relay.yaml', relayConfigSchema, {}))).toMatch(/store/);
    expect(
      configFailure(() => parseConfigText(text(['broker:', '  url: mqtt://b:1883', '  shared_group: relays', 'store:', '  path: relay.db']), 'relay.yaml', relayConfigSchema, {})),
    ).toMatch(/broker\.shared_group: several relay instances need one store they share/);
  });
});
