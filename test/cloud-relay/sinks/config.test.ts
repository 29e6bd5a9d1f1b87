import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../cloud-relay/config.js';
import { parseConfigText } from '../../../common/config-file.js';
import { secretValues } from '../../../common/secrets.js';
import { configFailure } from '../../helpers/config-failure.js';

const BASE = ['broker: embedded', 'store:', '  path: relay.db', 'auth:', '  disabled: true'];
const ENV = { ERP_EDGE_WEBHOOK_SECRET: 'whsec-0123456789abcdef', ERP_EDGE_WEBHOOK_TOKEN: 'tok-abcdef', ERP_EDGE_BUS_PASSWORD: 'bus-pass-1234' };
const parse = (lines: string[]) => parseConfigText([...BASE, ...lines, ''].join('\n'), 'relay.yaml', relayConfigSchema, ENV);

describe('relay config: sinks and retention', () => {
  it('has no sink and prunes nothing by default', () => {
    const cfg = parse([]);
    expect(cfg.sinks).toEqual([]);
    expect(cfg.retention).toEqual({ every: 600_000, batch: 1_000 });
  });

  it('loads the commented sinks block of the example with its defaults; the webhook secret and the broker password are secrets', () => {
    const example = readFileSync(resolve(import.meta.dirname, '../../../config/relay.example.yaml'), 'utf8');
    const from = example.indexOf('#sinks:');
    const block = example.slice(from, example.indexOf('\n\n', from)).split('\n').map((l) => l.slice(1));
    const cfg = parse(block);
    expect(cfg.sinks).toEqual([
      {
        type: 'webhook',
        name: 'erp',
        url: 'https://erp.example/erp-edge/events',
        secret: ENV.ERP_EDGE_WEBHOOK_SECRET,
        signature_header: 'X-Erp-Edge-Signature',
        headers: { Authorization: 'Bearer tok-abcdef' },
        timeout: 10_000,
        batch_size: 100,
        max_attempts: 10,
        retry: { initial: 1_000, max: 300_000 },
        concurrency: 16,
        lease: 30_000,
        poll: 1_000,
      },
      expect.objectContaining({ type: 'mqtt', name: 'cloud-bus', topic: 'erp-edge/v1/cloud/{site}/{agent}/{stream}', retain: false, timeout: 10_000, max_attempts: 10 }),
    ]);
    expect(cfg.retention).toEqual({ max_age: 30 * 86_400_000, every: 600_000, batch: 1_000 });
    expect(secretValues(cfg)).toEqual(expect.arrayContaining([ENV.ERP_EDGE_WEBHOOK_SECRET, ENV.ERP_EDGE_BUS_PASSWORD, 'Bearer tok-abcdef']));
  });

  it('refuses a bad sink naming the file, line and key', () => {
    const sink = (...lines: string[]) => parse(['sinks:', ...lines]);
    expect(configFailure(() => sink('  - { name: a, type: kafka, url: x }'))).toMatch(/relay\.yaml:7:\d+ sinks\[0\]/);
    expect(configFailure(() => sink('  - { name: a, type: webhook, url: "https://u:p@erp.example/x" }'))).toMatch(/sinks\[0\]\.url: put credentials in headers/);
    expect(configFailure(() => sink('  - { name: a, type: webhook, url: "https://erp.example/x", secret: short }'))).toMatch(/sinks\[0\]\.secret: use at least 16 characters/);
    expect(configFailure(() => sink('  - { name: a, type: webhook, url: "https://erp.example/x", retry: { initial: 0 } }'))).toMatch(/sinks\[0\]\.retry\.initial/);
    expect(configFailure(() => sink('  - { name: a, type: webhook, url: "https://erp.example/x", timout: 5s }'))).toMatch(/sinks\[0\].*timout/);
    expect(configFailure(() => sink('  - { name: a, type: mqtt, url: "mqtt://bus:1883", topic: "cloud/{plant}/x" }'))).toMatch(/sinks\[0\]\.topic: placeholders are \{site\}/);
    expect(configFailure(() => sink('  - { name: a, type: mqtt, url: "mqtt://bus:1883", topic: "cloud/#" }'))).toMatch(/sinks\[0\]\.topic: .*wildcards/);
    expect(
      configFailure(() => sink('  - { name: a, type: mqtt, url: "mqtt://bus:1883" }', '  - { name: a, type: webhook, url: "https://erp.example/x" }')),
    ).toMatch(/relay\.yaml:8:\d+ sinks\[1\]\.name: sink name "a" is used twice/);
    expect(configFailure(() => parse(['retention:', '  max_age: forever']))).toMatch(/retention\.max_age/);
    // A delivery must end before its lease does (the lease is renewed only when the cursor moves).
    expect(configFailure(() => sink('  - { name: a, type: webhook, url: "https://erp.example/x", timeout: 30s }'))).toMatch(/relay\.yaml:7:\d+ sinks\[0\]\.timeout: must be shorter than lease \(30000 ms\)/);
    expect(configFailure(() => sink('  - { name: a, type: mqtt, url: "mqtt://bus:1883", timeout: 20s, lease: 10s }'))).toMatch(/sinks\[0\]\.timeout: must be shorter than lease \(10000 ms\)/);
  });
});
