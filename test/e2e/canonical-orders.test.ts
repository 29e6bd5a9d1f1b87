/**
 * #13 acceptance: "A CSV order file dropped at the agent arrives at the webhook as canonical `order`
 * events by a mapping written only in YAML." The agent and the relay run as processes from their
 * YAML files on a spawned Mosquitto; the receiver is a real HTTP server. Nothing but YAML says what
 * an order is: the relay's `mappings:` and `routes:` (README "Routing and canonical events").
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { renameSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalEnvelope } from '../../cloud-relay/mapping/canonical/envelope.js';
import { orderV1 } from '../../cloud-relay/mapping/canonical/order.js';
import type { DeadLetterRow } from '../../cloud-relay/store/delivery.js';
import { waitFor } from '../helpers/net.js';
import { agentYaml, CliProcess, relayYaml, waitForHttp } from '../helpers/pipeline.js';
import { processSite } from '../helpers/process-site.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { WebhookServer } from '../helpers/webhook-server.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const ROOT = resolve(import.meta.dirname, '../..');

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** The relay's routing and mapping, as a site would write them. */
const routingYaml = (hookUrl: string, sites: string) => `
sinks:
  - type: webhook
    name: erp-orders
    url: ${hookUrl}
    retry: { initial: 100ms, max: 1s }
mappings:
  orders-csv:
    type: order
    version: 1
    from: fields
    steps:
      - { op: rename, from: order_id, to: order_number }
      - { op: rename, from: customer, to: customer.name }
      - { op: rename, from: sku, to: 'lines[0].sku' }
      - { op: rename, from: qty, to: 'lines[0].quantity' }
      - { op: cast, field: 'lines[0].quantity', to: integer }
      - { op: constant, to: 'lines[0].uom', value: EA }
      - { op: constant, to: order_type, value: sales }
      - { op: lookup, field: warehouse, to: site, table: { ${sites} } }
      - { op: copy, from: $source_at, to: ordered_at }
routes:
  - name: Lyon orders to the ERP
    stream: orders
    where:
      payload.fields.warehouse: { in: [LYS, VEN] }
    mapping: orders-csv
    sinks: [erp-orders]
`;

/**
 * The sample file-drop export (config/samples/orders-sample.csv) with three more rows: a quantity
 * that is not a number, a warehouse the mapping's lookup table does not know yet, and a Paris row
 * no route takes.
 */
const CSV = `order_id,customer,sku,qty,warehouse
SO-1001,ACME Retail,SKU-4411,12,LYS
SO-1002,Müller GmbH,SKU-0092,3,LYS
SO-1099,Broken Ltd,SKU-0001,three,LYS
SO-1003,"Smith, Jones & Co",SKU-7710,48,LYS
SO-3001,Venissieux Client,SKU-2222,5,VEN
SO-2001,Paris Client,SKU-1111,1,PAR
`;

interface Delivered {
  id: string;
  seq: number;
  correlation_id: string | null;
  value: unknown;
}

describe.skipIf(!hasMosquitto)('canonical orders at a webhook (agent and relay as processes)', () => {
  it('a CSV order file dropped at the agent arrives at the webhook as canonical order events, by YAML only; rows that do not map are dead-lettered with field and reason, and one the fixed mapping can map arrives on dlq retry', async () => {
    const { dir, mosquitto, httpUrl, inbox, dataDir } = await processSite(cleanups, 'canonical-');
    const hook = await WebhookServer.start();
    cleanups.push(() => hook.stop());
    const relayConfig = join(dir, 'relay.yaml');
    const writeRelayConfig = (sites: string) =>
      writeFileSync(relayConfig, relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: Number(new URL(httpUrl).port), brokerUrl: mosquitto.url, extra: routingYaml(hook.url, sites) }));
    writeRelayConfig('LYS: lyon-dc');
    writeFileSync(join(dir, 'agent.yaml'), agentYaml({ site: 'lyon', agent: 'edge-1', url: mosquitto.url, inbox, dataDir }));
    const relay = new CliProcess('cloud-relay', relayConfig, join(dir, 'relay.log'));
    const agent = new CliProcess('edge-agent', join(dir, 'agent.yaml'), join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));
    relay.start();
    await waitForHttp(httpUrl);
    agent.start();

    // Dropped as an ERP export does: written under a temp name, then renamed.
    mkdirSync(inbox, { recursive: true });
    writeFileSync(join(inbox, 'orders-0412.csv.tmp'), CSV);
    renameSync(join(inbox, 'orders-0412.csv.tmp'), join(inbox, 'orders-0412.csv'));

    // Each request the receiver accepts is awaited; bounds are deadlines for a loaded 2-core VM, not synchronisation.
    const delivered = (): Delivered[] => hook.received.flatMap((r) => (r.body as { events: Delivered[] }).events);
    while (delivered().length < 3) await hook.waitFor(hook.received.length + 1, 120_000);
    /** Dead letters of the sink once it has passed every stored event and settled every retry; -1 before. */
    const deadLetters = async (): Promise<number> => {
      const res = await fetch(`${httpUrl}/api/sinks`);
      const body = (await res.json()) as { sinks: { name: string; dead_letters: number; retrying: number; behind: number }[] };
      const s = body.sinks.find((x) => x.name === 'erp-orders')!;
      return s.behind === 0 && s.retrying === 0 ? s.dead_letters : -1;
    };
    const dlq = async (command: 'list' | 'retry'): Promise<string> =>
      (await promisify(execFile)(process.execPath, [join(ROOT, 'bin', 'cloud-relay.js'), 'dlq', command, '--config', relayConfig, ...(command === 'list' ? ['--json'] : [])], { cwd: ROOT })).stdout;
    const deadRows = async () =>
      (await dlq('list'))
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as DeadLetterRow);
    await waitFor('the sink has passed every stored event', async () => (await deadLetters()) >= 0, 120_000, 100);

    // Three canonical orders, in the file's order, each valid against the published schemas.
    const events = delivered();
    expect(events.map((e) => e.seq)).toEqual([1, 2, 4]);
    const fileHash = createHash('sha256').update(CSV).digest('hex').slice(0, 16);
    for (const e of events) {
      const env = canonicalEnvelope.parse(e.value);
      expect(orderV1.parse(env.data)).toEqual(env.data);
      expect(env).toMatchObject({ type: 'order', version: 1, idempotency_key: `lyon/edge-1/orders/${e.id}`, correlation_id: `file:${fileHash}` });
      expect(e.correlation_id).toBe(env.correlation_id);
      expect(env.origin).toMatchObject({ site: 'lyon', agent: 'edge-1', stream: 'orders', seq: e.seq, source: 'file-drop:orders' });
    }
    expect(events.map((e) => canonicalEnvelope.parse(e.value).data)).toEqual([
      { order_number: 'SO-1001', customer: { name: 'ACME Retail' }, lines: [{ sku: 'SKU-4411', quantity: 12, uom: 'EA' }], order_type: 'sales', warehouse: 'LYS', site: 'lyon-dc', ordered_at: expect.any(String) },
      { order_number: 'SO-1002', customer: { name: 'Müller GmbH' }, lines: [{ sku: 'SKU-0092', quantity: 3, uom: 'EA' }], order_type: 'sales', warehouse: 'LYS', site: 'lyon-dc', ordered_at: expect.any(String) },
      { order_number: 'SO-1003', customer: { name: 'Smith, Jones & Co' }, lines: [{ sku: 'SKU-7710', quantity: 48, uom: 'EA' }], order_type: 'sales', warehouse: 'LYS', site: 'lyon-dc', ordered_at: expect.any(String) },
    ]);
    // The request's Idempotency-Key is built from the events' keys (site/agent/stream/id, as the canonical idempotency_key).
    expect(decodeURIComponent(String(hook.received[0]!.headers['idempotency-key']))).toMatch(new RegExp(`^lyon/edge-1/orders/${events[0]!.id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));

    // The rows that do not map are in the dead-letter table with the field and the reason; the Paris row went nowhere.
    expect(await deadLetters()).toBe(2);
    const quantity = expect.objectContaining({ sink: 'erp-orders', site: 'lyon', agent: 'edge-1', stream: 'orders', seq: 3, field: 'lines[0].quantity', error: expect.stringContaining('"three" is not a whole number') });
    expect(await deadRows()).toEqual([
      quantity,
      expect.objectContaining({ seq: 5, field: 'warehouse', error: expect.stringContaining('"VEN" is not in the lookup table') }),
    ]);

    // The mapping learns the new warehouse (YAML again), the relay restarts, `dlq retry`: the VEN order
    // arrives, mapped by the new table; the quantity row fails the same way and is dead again.
    await relay.kill('SIGTERM');
    writeRelayConfig('LYS: lyon-dc, VEN: venissieux-dc');
    relay.start();
    await waitForHttp(httpUrl);
    expect(await dlq('retry')).toMatch(/^2 dead-lettered event/);
    while (delivered().length < 4) await hook.waitFor(hook.received.length + 1, 120_000);
    await waitFor('the retried rows settled', async () => (await deadLetters()) >= 0, 120_000, 100);
    const retried = delivered()[3]!;
    expect(retried.seq).toBe(5);
    expect(canonicalEnvelope.parse(retried.value)).toMatchObject({ idempotency_key: `lyon/edge-1/orders/${retried.id}`, correlation_id: `file:${fileHash}`, data: { order_number: 'SO-3001', site: 'venissieux-dc', warehouse: 'VEN' } });
    expect(await deadRows()).toEqual([quantity]);
    expect(delivered()).toHaveLength(4);
  }, 300_000);
});
