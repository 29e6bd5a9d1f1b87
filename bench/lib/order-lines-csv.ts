import { closeSync, openSync, writeSync } from 'node:fs';

export const ORDER_LINES_HEADER = 'id,order_no,sku,qty,price,warehouse,updated_at';
const COLOURS = ['BLK', 'WHT', 'RED', 'BLU', 'GRN'];
const SIZES = ['S', 'M', 'L', 'XL'];
const REGIONS = ['NORTH', 'SOUTH', 'EAST', 'WEST'];
const T0 = Date.UTC(2026, 10, 1);
/** Rows built into one string before each write (~1 MB). */
const ROWS_PER_WRITE = 10_000;

/** Row `i` (1-based) of an ERP order-lines export: ~100 bytes, deterministic, no quoting needed. */
export function orderLine(i: number): string {
  const order = `SO-2026-${String(4_000_000 + Math.floor(i / 8)).padStart(10, '0')}`;
  const sku = `SKU-${String((i * 7919) % 2_500_000).padStart(7, '0')}-${COLOURS[i % 5]}-${SIZES[i % 4]}`;
  const qty = 1 + ((i * 31) % 200);
  const price = (((i * 1237) % 1_000_000) / 100).toFixed(2);
  const warehouse = `WH-${REGIONS[i % 4]}-DC${String(i % 12).padStart(2, '0')}`;
  const updated = new Date(T0 + i * 1_000).toISOString();
  return `${i},${order},${sku},${qty},${price},${warehouse},${updated}`;
}

/**
 * Writes a CSV of `rows` order lines (header first, CRLF line ends as Windows ERP exports have)
 * to `path`; returns its size in bytes.
 */
export function writeOrderLinesCsv(path: string, rows: number): number {
  const fd = openSync(path, 'w');
  let bytes = 0;
  try {
    bytes += writeSync(fd, `${ORDER_LINES_HEADER}\r\n`);
    for (let from = 1; from <= rows; from += ROWS_PER_WRITE) {
      const to = Math.min(rows, from + ROWS_PER_WRITE - 1);
      const lines: string[] = [];
      for (let i = from; i <= to; i++) lines.push(orderLine(i));
      bytes += writeSync(fd, `${lines.join('\r\n')}\r\n`);
    }
  } finally {
    closeSync(fd);
  }
  return bytes;
}
