/**
 * Sizes for people: `300 bytes`, `12 MB`, `1.5 GB`. `base` 1024 for memory and WAL (PostgreSQL's
 * own units), 1000 for disks (as disk tools show them).
 */
export function formatBytes(n: number, base: 1000 | 1024 = 1024): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= base && u < units.length - 1) {
    v /= base;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
