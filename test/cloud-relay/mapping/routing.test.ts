import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../cloud-relay/config.js';
import type { MappableEvent } from '../../../cloud-relay/mapping/event.js';
import { compileRoutes } from '../../../cloud-relay/mapping/routing.js';
import { parseConfigText } from '../../../common/config-file.js';
import { runCli } from '../../helpers/cli.js';
import { configFailure } from '../../helpers/config-failure.js';
import { makeTempDir } from '../../helpers/tmp.js';

const BASE = ['broker: embedded', 'store:', '  path: relay.db', 'auth:', '  disabled: true'];
const load = (yaml: string) => parseConfigText([...BASE, yaml].join('\n'), 'relay.yaml', relayConfigSchema, {});

const SINKS = `
sinks:
  - { type: webhook, name: erp, url: 'http://127.0.0.1:9/erp' }
  - { type: webhook, name: archive, url: 'http://127.0.0.1:9/archive' }
  - { type: webhook, name: pager, url: 'http://127.0.0.1:9/pager' }
  - { type: webhook, name: audit, url: 'http://127.0.0.1:9/audit' }
`;

const ROUTES = SINKS + `
mappings:
  orders-csv: { type: order, version: 1, steps: [{ op: rename, from: a, to: order_number }] }
routes:
  - name: lyon orders to the ERP
    site: lyon*
    stream: [orders, orders-*]
    mapping: orders-csv
    sinks: [erp, archive]
  - name: urgent
    where:
      payload.fields.priority: { in: [1, high] }
      payload.fields.warehouse: LYS
    sinks: [pager]
  - name: everything from edge-9 with a key, unmapped
    agent: edge-9
    where:
      key: { exists: true }
    sinks: [archive, audit]
  - name: files without a cancel flag
    where:
      payload.fields.cancelled: { exists: false }
      source: file-drop:orders
    sinks: [audit]
`;

const event = (over: Partial<MappableEvent> & { fields?: Record<string, unknown> } = {}): MappableEvent => {
  const { fields, ...rest } = over;
  return { site: 'paris', agent: 'edge-1', stream: 'stock', seq: 1, id: 'x', ts: 0, source: 'sql:stock', correlation_id: null, key: null, data: { fields: fields ?? {} }, ...rest };
};

describe('routing', () => {
  const route = compileRoutes(load(ROUTES).routes);
  const sinks = (e: MappableEvent) => route(e).map((t) => `${t.sink}${t.mapping ? `<${t.mapping}>` : ''}`);

  it('site and stream globs choose sinks and the mapping for them', () => {
    expect(sinks(event({ site: 'lyon-2', stream: 'orders' }))).toEqual(['erp<orders-csv>', 'archive<orders-csv>']);
    expect(sinks(event({ site: 'lyon', stream: 'orders-eu' }))).toEqual(['erp<orders-csv>', 'archive<orders-csv>']);
    expect(sinks(event({ site: 'lyon', stream: 'ordersx' }))).toEqual([]);
    expect(sinks(event({ site: 'paris', stream: 'orders' }))).toEqual([]);
  });

  it('field conditions: in and equals compare a CSV text with a YAML number as text; all conditions of a route must hold', () => {
    expect(sinks(event({ fields: { priority: '1', warehouse: 'LYS' } }))).toEqual(['pager']);
    expect(sinks(event({ fields: { priority: 'high', warehouse: 'LYS' } }))).toEqual(['pager']);
    expect(sinks(event({ fields: { priority: 'low', warehouse: 'LYS' } }))).toEqual([]);
    expect(sinks(event({ fields: { priority: 1, warehouse: 'PAR' } }))).toEqual([]);
  });

  it('exists tests presence; every matching route adds its sinks; a sink already chosen keeps the first route (and its mapping)', () => {
    expect(sinks(event({ agent: 'edge-9', key: 'K1' }))).toEqual(['archive', 'audit']);
    expect(sinks(event({ agent: 'edge-9', key: null }))).toEqual([]);
    expect(sinks(event({ source: 'file-drop:orders' }))).toEqual(['audit']);
    expect(sinks(event({ source: 'file-drop:orders', fields: { cancelled: 'y' } }))).toEqual([]);
    const both = route(event({ site: 'lyon', stream: 'orders', agent: 'edge-9', key: 'K', source: 'file-drop:orders' }));
    expect(both).toEqual([
      { sink: 'erp', mapping: 'orders-csv', route: 'lyon orders to the ERP' },
      { sink: 'archive', mapping: 'orders-csv', route: 'lyon orders to the ERP' },
      { sink: 'audit', mapping: undefined, route: 'everything from edge-9 with a key, unmapped' },
    ]);
  });

  it('no routes: nothing is routed (the sinks keep their own defaults)', () => {
    expect(load('').routes).toEqual([]);
    expect(compileRoutes([])(event())).toEqual([]);
  });
});

describe('routing and mapping config errors', () => {
  it('each names the file, line, column and key', () => {
    const bad = (yaml: string) => configFailure(() => load(yaml));
    expect(bad('routes:\n  - sinks: [a]\n    mapping: nope')).toMatch(/^relay\.yaml:8:14 routes\[0\]\.mapping: no mapping named "nope" \(there is no `mappings:` section\)/m);
    expect(bad('routes:\n  - sinks: [a]')).toMatch(/^relay\.yaml:7:13 routes\[0\]\.sinks\[0\]: no sink named "a" \(there is no `sinks:` section\)/m);
    expect(bad(`${SINKS}routes:\n  - sinks: [erp, ERP]`)).toMatch(/routes\[0\]\.sinks\[1\]: no sink named "ERP": defined are erp, archive, pager, audit/);
    expect(bad('routes:\n  - sinks: [a]\n    where:\n      fields.x: 1')).toMatch(/relay\.yaml:9:17 routes\[0\]\.where\["fields\.x"\]: "fields\.x": test payload\.<field>/);
    expect(bad('routes:\n  - sinks: []')).toMatch(/relay\.yaml:7:\d+ routes\[0\]\.sinks: list at least one sink/);
    expect(bad('routes:\n  - sinks: [a]\n    where:\n      payload.x: { in: [1], exists: true }')).toMatch(/relay\.yaml:9:18 routes\[0\]\.where\["payload\.x"\]: give exactly one of equals, in, exists/);
    expect(bad('routes:\n  - sinks: [a]\n    where:\n      payload.x: [1, 2]')).toMatch(/relay\.yaml:9:18 routes\[0\]\.where\["payload\.x"\]: a list is not a condition/);
    expect(bad('mappings:\n  "two words": { type: order, version: 1, steps: [{ op: drop, fields: [a] }] }')).toMatch(/relay\.yaml:7:\d+ mappings\["two words"\]: mapping name "two words"/);
    const mapping = (steps: string) => bad(`mappings:\n  m:\n    type: order\n    version: 1\n    steps:\n${steps}`);
    expect(mapping('      - { op: renmae, from: a, to: b }')).toMatch(/^relay\.yaml:11:15 mappings\.m\.steps\[0\]\.op: Invalid discriminator value\. Expected 'rename'/m);
    expect(mapping('      - { op: cast, field: a, to: float }')).toMatch(/^relay\.yaml:11:\d+ mappings\.m\.steps\[0\]\.to: Invalid option: expected one of "string"\|"number"\|"integer"\|"boolean"\|"decimal"/m);
    expect(mapping('      - { op: date, field: d, zone: Mars/Base }')).toMatch(/mappings\.m\.steps\[0\]\.zone: unknown IANA time zone "Mars\/Base"/);
    expect(mapping('      - op: date\n        field: d\n        format: dd.MM.yy')).toMatch(/^relay\.yaml:13:17 mappings\.m\.steps\[0\]\.format: format "dd\.MM\.yy": unknown pattern "yy"/m);
    expect(bad('mappings:\n  m: { type: orders, version: 1, steps: [{ op: drop, fields: [a] }] }')).toMatch(/relay\.yaml:7:\d+ mappings\.m\.type: unknown canonical type "orders" \(known: order \(1\), inventory_movement \(1\), shipment \(1\)\)/);
    expect(bad('mappings:\n  m: { type: order, version: 2, steps: [{ op: drop, fields: [a] }] }')).toMatch(/mappings\.m\.version: order has no version 2/);
  });
});

describe('a relay with a bad mapping', () => {
  it('is refused at start (`cloud-relay run`), every problem with its file:line:col and key', () => {
    const tmp = makeTempDir('mapping-cli-');
    try {
      const file = join(tmp.dir, 'relay.yaml');
      writeFileSync(
        file,
        [
          ...BASE,
          'mappings:',
          '  orders:',
          '    type: order',
          '    version: 1',
          '    steps:',
          '      - { op: rename, from: a, to: order_number }',
          '      - { op: cast, field: qty, to: float }',
          '      - { op: explode, field: qty }',
          '',
        ].join('\n'),
      );
      const r = runCli('cloud-relay', ['run', '--config', file]);
      expect(r.status).toBe(1);
      expect(r.stderr).toContain(`${file}:12:37 mappings.orders.steps[1].to: Invalid option: expected one of "string"|"number"|"integer"|"boolean"|"decimal"`);
      expect(r.stderr).toContain(`${file}:13:15 mappings.orders.steps[2].op: Invalid discriminator value. Expected 'rename' | 'copy' | 'drop' | 'constant' | 'cast' | 'date' | 'lookup'`);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('config/relay.example.yaml', () => {
  it('its commented mappings and routes load once uncommented (with a sink named erp)', () => {
    const example = readFileSync(resolve(import.meta.dirname, '../../../config/relay.example.yaml'), 'utf8');
    const lines = example.slice(example.indexOf('#mappings:')).split('\n');
    const block = lines.slice(0, lines.findIndex((l) => !l.startsWith('#'))).map((l) => l.slice(1));
    const cfg = load(["sinks: [{ type: webhook, name: erp, url: 'http://127.0.0.1:9/erp' }]", ...block].join('\n'));
    expect(Object.keys(cfg.mappings)).toEqual(['orders-csv']);
    expect(cfg.routes).toEqual([{ stream: ['orders'], mapping: 'orders-csv', sinks: ['erp'] }]);
  });
});
