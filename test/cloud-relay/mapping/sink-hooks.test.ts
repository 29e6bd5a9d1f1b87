import { describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../cloud-relay/config.js';
import { routingHooks } from '../../../cloud-relay/mapping/sink-hooks.js';
import { identityTransform, type SinkEvent } from '../../../cloud-relay/sinks/sink.js';
import { parseConfigText } from '../../../common/config-file.js';

const YAML = `broker: embedded
store: { path: relay.db }
auth: { disabled: true }
sinks:
  - { type: webhook, name: erp, url: 'http://127.0.0.1:9/erp' }
  - { type: webhook, name: lake, url: 'http://127.0.0.1:9/lake' }
  - { type: webhook, name: everything, url: 'http://127.0.0.1:9/all' }
mappings:
  orders-csv:
    type: order
    version: 1
    from: fields
    unmapped: drop
    steps:
      - { op: rename, from: order_id, to: order_number }
      - { op: rename, from: customer, to: customer.name }
      - { op: rename, from: sku, to: 'lines[0].sku' }
      - { op: rename, from: qty, to: 'lines[0].quantity' }
      - { op: cast, field: 'lines[0].quantity', to: number }
      - { op: constant, to: 'lines[0].uom', value: EA }
routes:
  - { stream: orders, mapping: orders-csv, sinks: [erp] }
  - { stream: 'orders*', sinks: [erp, lake] }
`;

const cfg = parseConfigText(YAML, 'relay.yaml', relayConfigSchema, {});

const event = (stream: string, fields: Record<string, unknown>): SinkEvent => ({
  site: 's',
  agent: 'a',
  stream,
  epoch: 'e0000000',
  seq: 1,
  id: `${stream}:1`,
  ts: 0,
  source: 'file-drop:orders',
  correlation_id: 'file:1',
  source_ts: null,
  key: null,
  txn: null,
  data: { file: 'o.csv', line: 2, fields },
  received_at: 0,
});

describe('routing and mapping as the sinks’ hooks', () => {
  const hooksFor = routingHooks(cfg)!;
  const erp = hooksFor({ name: 'erp', type: 'webhook' });
  const lake = hooksFor({ name: 'lake', type: 'webhook' });
  const row = { order_id: 'SO-1', customer: 'ACME', sku: 'X', qty: '2', warehouse: 'LYS' };

  it('a routed sink matches only what its routes match; its transform is the route’s mapping, or the event as stored', () => {
    const orders = event('orders', row);
    expect(erp.match!(orders)).toBe(true);
    expect(erp.transform!(orders)).toMatchObject({ ok: true, value: { type: 'order', version: 1, idempotency_key: `${orders.site}/${orders.agent}/orders/orders:1`, correlation_id: 'file:1', data: { order_number: 'SO-1' } } });
    expect(lake.match!(orders)).toBe(true);
    expect(lake.transform!(orders)).toEqual(identityTransform(orders));
    const returns = event('orders-returns', row);
    expect(erp.match!(returns)).toBe(true);
    expect(erp.transform!(returns)).toEqual(identityTransform(returns)); // the second route (no mapping) chose erp
    expect(erp.match!(event('stock', row))).toBe(false);
  });

  it('a mapping failure is the transform’s {ok: false, field, reason}: the delivery loop dead-letters it with them', () => {
    expect(erp.transform!(event('orders', { ...row, qty: 'lots' }))).toMatchObject({ ok: false, field: 'lines[0].quantity', reason: expect.stringContaining('"lots" is not a number') });
  });

  it('a sink no route names keeps the defaults; without routes there are no hooks at all', () => {
    expect(hooksFor({ name: 'everything', type: 'webhook' })).toEqual({});
    expect(routingHooks({ ...cfg, routes: [] })).toBeUndefined();
  });
});
