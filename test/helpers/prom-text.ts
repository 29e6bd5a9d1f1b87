/**
 * A small reader of the Prometheus text format for assertions: `series` maps each sample line's
 * name and labels, as written (`name{a="x",b="y"}`), to its value. Labels are kept in the order
 * the exporter wrote them (prom-client: as given to set/inc, then `le` for buckets).
 */
export function parsePromText(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return series;
}

/** The value of `name` with exactly these labels (any order); undefined when absent. */
export function sample(series: Map<string, number>, name: string, labels: Record<string, string> = {}): number | undefined {
  const want = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : 1));
  for (const [k, v] of series) {
    const m = /^([^{]+)(?:\{(.*)\})?$/.exec(k);
    if (!m || m[1] !== name) continue;
    const got = [...(m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!] as const).sort(([a], [b]) => (a < b ? -1 : 1));
    if (got.length === want.length && got.every(([gk, gv], i) => gk === want[i]![0] && gv === want[i]![1])) return v;
  }
  return undefined;
}

/** Every series of `name` (name and labels as written). */
export function seriesOf(series: Map<string, number>, name: string): string[] {
  return [...series.keys()].filter((k) => k === name || k.startsWith(`${name}{`));
}
