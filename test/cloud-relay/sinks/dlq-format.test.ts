import { expect, it } from 'vitest';
import { formatRows } from '../../../cloud-relay/sinks/dlq-cli.js';
import type { DeadLetterRow } from '../../../cloud-relay/store/delivery.js';

it('dlq list keeps one row a line with the same columns when an error text or an id holds tabs, line breaks or backslashes', () => {
  const row: DeadLetterRow = {
    id: 7, sink: 'erp', stream_id: 1, site: 'plant-7', agent: 'edge-1', stream: 'orders', epoch: 'e1', seq: 41,
    event_id: 'orders.csv#41\tx', status: 'dead', attempts: 5, error: 'HTTP 500:\n<html>\r\n\tboom \\ </html>', field: null, dead_at: 0, updated_at: 0,
  } as DeadLetterRow;
  const lines = formatRows([row, { ...row, id: 8, error: 'plain' }]).trimEnd().split('\n');
  expect(lines).toHaveLength(3);
  for (const l of lines) expect(l.split('\t')).toHaveLength(10);
  expect(lines[1]!.split('\t')[5]).toBe('orders.csv#41\\tx');
  expect(lines[1]!.split('\t')[9]).toBe('HTTP 500:\\n<html>\\r\\n\\tboom \\\\ </html>');
});
