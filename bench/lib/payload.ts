/** A ~170-byte record in the v1 wire shape: the same payload every scenario sends. */
export function sampleRecord(n: number): string {
  return JSON.stringify({
    seq: n,
    id: `load:${n}`,
    ts: Date.now(),
    source: 'synthetic:load',
    correlation_id: null,
    data: { n, sku: `SKU-${(n * 7919) % 100_000}`, qty: n % 97, loc: `A-${n % 40}-${n % 12}`, order: `SO-${Math.floor(n / 10)}` },
  });
}
