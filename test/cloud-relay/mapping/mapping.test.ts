import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { relayConfigSchema } from '../../../cloud-relay/config.js';
import { canonicalEnvelope } from '../../../cloud-relay/mapping/canonical/envelope.js';
import { orderV1 } from '../../../cloud-relay/mapping/canonical/order.js';
import type { MappableEvent } from '../../../cloud-relay/mapping/event.js';
import { compileMapping, mappingError, type CompiledMapping } from '../../../cloud-relay/mapping/mapping.js';
import { parseConfigText } from '../../../common/config-file.js';
import { isErpEdgeError } from '../../../common/errors.js';
import type { WireRecord } from '../../../common/wire-v1.js';
import { captureCsv } from './csv-capture.js';

const BASE = ['broker: embedded', 'store:', '  path: relay.db', 'auth:', '  disabled: true'];

/** The mapping for the file-drop sample (config/samples/orders-sample.csv), as a site would write it. */
const ORDERS_YAML = `
mappings:
  orders-csv:
    type: order
    version: 1
    from: fields                 # a file-drop record's columns
    steps:
      - { op: rename, from: order_id, to: order_number }
      - { op: rename, from: customer, to: customer.name }
      - { op: rename, from: sku, to: 'lines[0].sku' }
      - { op: rename, from: qty, to: 'lines[0].quantity' }
      - { op: cast, field: 'lines[0].quantity', to: integer }
      - { op: constant, to: 'lines[0].uom', value: EA }
      - { op: constant, to: order_type, value: sales }
      - { op: lookup, field: warehouse, to: site, table: { LYS: lyon-dc, PAR: paris-dc } }
      - { op: copy, from: $source_at, to: ordered_at }
`;

function mappingsFrom(yaml: string): Record<string, CompiledMapping> {
  const cfg = parseConfigText([...BASE, yaml].join('\n'), 'relay.yaml', relayConfigSchema, {});
  return Object.fromEntries(Object.entries(cfg.mappings).map(([name, def]) => [name, compileMapping(name, def)]));
}

const asEvent = (r: WireRecord, stream = 'orders'): MappableEvent => ({ site: 'lyon', agent: 'edge-1', stream, ...r });

describe('a mapping written only in YAML', () => {
  it('turns the records the file-drop collector captures from the sample CSV into valid canonical orders', async () => {
    const csv = readFileSync(resolve(import.meta.dirname, '../../../config/samples/orders-sample.csv'));
    const records = await captureCsv(csv);
    expect(records).toHaveLength(3);
    const map = mappingsFrom(ORDERS_YAML)['orders-csv']!;
    const events = records.map((r) => {
      const out = map(asEvent(r));
      if (!out.ok) throw new Error(`${out.field}: ${out.reason}`);
      return out.value;
    });
    for (const [i, e] of events.entries()) {
      // Valid against the published schemas, not only shaped like them.
      expect(canonicalEnvelope.parse(e)).toEqual(e);
      expect(orderV1.parse(e.data)).toEqual(e.data);
      // The correlation id the collector gave (one per file: its content hash) and the record id travel unchanged.
      expect(e.correlation_id).toBe(`file:${createHash('sha256').update(csv).digest('hex').slice(0, 16)}`);
      expect(e.correlation_id).toBe(records[i]!.correlation_id);
      expect(e.idempotency_key).toBe(`lyon/edge-1/orders/${records[i]!.id}`);
      expect(e.origin).toMatchObject({ site: 'lyon', agent: 'edge-1', stream: 'orders', seq: i + 1, source: 'file-drop:orders' });
      expect(e.data).toMatchObject({ site: 'lyon-dc', order_type: 'sales', ordered_at: e.origin.source_at });
    }
    expect(events.map((e) => e.data)).toEqual([
      expect.objectContaining({ order_number: 'SO-1001', customer: { name: 'ACME Retail' }, lines: [{ sku: 'SKU-4411', quantity: 12, uom: 'EA' }] }),
      expect.objectContaining({ order_number: 'SO-1002', customer: { name: 'Müller GmbH' }, lines: [{ sku: 'SKU-0092', quantity: 3, uom: 'EA' }] }),
      expect.objectContaining({ order_number: 'SO-1003', customer: { name: 'Smith, Jones & Co' }, lines: [{ sku: 'SKU-7710', quantity: 48, uom: 'EA' }] }),
    ]);
    // The stored record is not changed by mapping it (other sinks may get it as it is).
    expect(records[0]!.data).toMatchObject({ fields: { order_id: 'SO-1001', qty: '12' } });
  });

  it('a row that does not fit fails with the field and the reason, and the rows around it still map', async () => {
    const records = await captureCsv('order_id,customer,sku,qty,warehouse\nSO-1,A,X,2,LYS\nSO-2,B,Y,two,LYS\nSO-3,C,Z,1,BER\nSO-4,,Z,1,PAR\n');
    const map = mappingsFrom(ORDERS_YAML)['orders-csv']!;
    const out = records.map((r) => map(asEvent(r)));
    expect(out[0]!.ok).toBe(true);
    expect(out[1]).toEqual({ ok: false, code: 'ERP_MAPPING_FAILED', field: 'lines[0].quantity', reason: 'mapping orders-csv: step 5 (cast): cannot cast to integer: "two" is not a whole number' });
    expect(out[2]).toMatchObject({ ok: false, field: 'warehouse', reason: 'mapping orders-csv: step 8 (lookup): "BER" is not in the lookup table (and the step has no default)' });
    // An empty customer passes the steps; the canonical schema names it.
    expect(out[3]).toMatchObject({ ok: false, field: 'customer.name', reason: expect.stringContaining('(order v1)') });
    const err = mappingError(out[1] as Extract<(typeof out)[number], { ok: false }>);
    expect(isErpEdgeError(err, 'ERP_MAPPING_FAILED')).toBe(true);
    expect(err.context).toEqual({ field: 'lines[0].quantity', reason: expect.stringContaining('"two"') });
  });
});

describe('canonical shapes', () => {
  const event = (data: unknown, extra: Partial<MappableEvent> = {}): MappableEvent => ({
    site: 'lyon',
    agent: 'edge-1',
    stream: 'stock',
    seq: 3,
    id: 'stock/42',
    ts: Date.UTC(2026, 11, 3, 12),
    source: 'sql:stock',
    correlation_id: null,
    data,
    ...extra,
  });

  it('inventory_movement from a SQL row: decimal-comma quantity, a lookup of movement types, a zoned timestamp, unmapped columns dropped', () => {
    const map = mappingsFrom(`
mappings:
  stock:
    type: inventory_movement
    version: 1
    unmapped: drop
    steps:
      - { op: rename, from: MVT_TYPE, to: movement_type }
      - { op: lookup, field: movement_type, table: { '101': receipt, '201': issue, '301': transfer }, ignore_case: true }
      - { op: rename, from: ITEM, to: sku }
      - { op: rename, from: QTY, to: quantity }
      - { op: cast, field: quantity, to: number, decimal_separator: ',' }
      - { op: constant, to: uom, value: KGM }
      - { op: rename, from: WHS, to: warehouse }
      - { op: rename, from: TO_WHS, to: to_warehouse, if_missing: omit }
      - { op: rename, from: POSTED, to: occurred_at }
      - { op: date, field: occurred_at, format: 'dd.MM.yyyy HH:mm:ss', zone: Europe/Berlin }
`).stock!;
    const row = { MVT_TYPE: '301', ITEM: 'SKU-1', QTY: '-12,5', WHS: 'W1', TO_WHS: 'W2', POSTED: '03.12.2026 13:00:00', NOTE: 'dropped' };
    const ok = map(event(row));
    expect(ok).toEqual({
      ok: true,
      value: {
        type: 'inventory_movement',
        version: 1,
        idempotency_key: 'lyon/edge-1/stock/stock/42',
        correlation_id: 'stock/42', // none from the collector: the record is its own correlation
        origin: { site: 'lyon', agent: 'edge-1', stream: 'stock', seq: 3, source: 'sql:stock', captured_at: '2026-12-03T12:00:00.000Z' },
        data: { movement_type: 'transfer', sku: 'SKU-1', quantity: -12.5, uom: 'KGM', warehouse: 'W1', to_warehouse: 'W2', occurred_at: '2026-12-03T12:00:00.000Z' },
      },
    });
    // A transfer without its destination is refused by the schema's own rule, naming the field.
    expect(map(event({ ...row, TO_WHS: undefined }))).toMatchObject({ ok: false, field: 'to_warehouse', reason: expect.stringContaining('a transfer names where the stock went') });
    expect(map(event({ ...row, POSTED: '2026-12-03' }))).toMatchObject({ ok: false, field: 'occurred_at', reason: expect.stringContaining('does not match the format') });
  });

  it('shipment: nested parcels and lines; a missing required field is named as required', () => {
    const map = mappingsFrom(`
mappings:
  ship:
    type: shipment
    version: 1
    steps:
      - { op: rename, from: no, to: shipment_number }
      - { op: rename, from: order, to: order_number }
      - { op: rename, from: wh, to: warehouse }
      - { op: rename, from: carrier, to: carrier.name }
      - { op: rename, from: tracking, to: 'packages[0].tracking_number' }
      - { op: rename, from: kg, to: 'packages[0].weight' }
      - { op: cast, field: 'packages[0].weight', to: decimal, scale: 3 }
      - { op: constant, to: 'packages[0].weight_uom', value: KGM }
      - { op: rename, from: sku, to: 'lines[0].sku' }
      - { op: rename, from: qty, to: 'lines[0].quantity' }
      - { op: cast, field: 'lines[0].quantity', to: integer }
      - { op: constant, to: 'lines[0].uom', value: EA }
      - { op: rename, from: at, to: shipped_at }
      - { op: date, field: shipped_at, format: epoch_ms }
      - { op: drop, fields: [internal] }
`).ship!;
    const data = { no: 'SH-9', order: 'SO-1', wh: 'LYS', carrier: 'DHL', tracking: 'JD01', kg: 2.5, sku: 'A', qty: 3, at: Date.UTC(2026, 0, 2), internal: 'x' };
    const out = map(event(data, { correlation_id: 'wave-7' }));
    expect(out.ok && out.value.correlation_id).toBe('wave-7');
    expect(out.ok && out.value.data).toEqual({
      shipment_number: 'SH-9',
      order_number: 'SO-1',
      warehouse: 'LYS',
      carrier: { name: 'DHL' },
      packages: [{ tracking_number: 'JD01', weight: '2.500', weight_uom: 'KGM' }],
      lines: [{ sku: 'A', quantity: 3, uom: 'EA' }],
      shipped_at: '2026-01-02T00:00:00.000Z',
    });
    const { wh: _wh, ...noWarehouse } = data;
    expect(map(event(noWarehouse))).toMatchObject({ ok: false, field: 'wh', reason: 'mapping ship: step 3 (rename): is missing' });
    const { internal: _i, ...rest } = data;
    expect(map(event({ ...rest, extra: 1 }))).toMatchObject({ ok: false, field: 'extra', reason: 'mapping ship: is not a field of shipment v1: rename it to one, drop it, or set unmapped: drop' });
  });

  it('a required canonical field no step wrote is named as required; data that is not an object is refused', () => {
    const map = mappingsFrom(`
mappings:
  thin:
    type: order
    version: 1
    steps:
      - { op: rename, from: n, to: order_number }
`).thin!;
    expect(map(event({ n: 'SO-1' }))).toMatchObject({ ok: false, field: 'customer', reason: expect.stringMatching(/^mapping thin: is required by order v1 \(and 1 more problem\)$/) });
    expect(map(event('text'))).toMatchObject({ ok: false, field: '(data)', reason: "mapping thin: the record's data is not an object" });
  });
});

describe('the README example', () => {
  it('loads as a relay config and routes and maps the sample CSV as the README shows', async () => {
    const readme = readFileSync(resolve(import.meta.dirname, '../../../README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Routing and canonical events'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const cfg = parseConfigText([...BASE, yaml].join('\n'), 'relay.yaml', relayConfigSchema, { ERP_HOOK_SECRET: 'a-secret-of-enough-length' });
    const { compileRoutes } = await import('../../../cloud-relay/mapping/routing.js');
    const records = await captureCsv(readFileSync(resolve(import.meta.dirname, '../../../config/samples/orders-sample.csv')));
    const route = compileRoutes(cfg.routes);
    const map = compileMapping('orders-csv', cfg.mappings['orders-csv']!);
    const e = asEvent(records[0]!);
    expect(route(e)).toEqual([{ sink: 'erp-orders', mapping: 'orders-csv', route: 'Lyon orders to the ERP' }]);
    expect(route({ ...e, site: 'paris' })).toEqual([]);
    expect(map(e)).toMatchObject({ ok: true, value: { data: { order_number: 'SO-1001', site: 'lyon-dc', lines: [{ sku: 'SKU-4411', quantity: 12, uom: 'EA' }] } } });
  });
});
