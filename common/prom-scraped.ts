import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * Prometheus metrics whose values live elsewhere (the agent's state, the relay's fleet registry and
 * counters) and are read when scraped: every series is rebuilt at each scrape, so a collector,
 * stream or agent that is gone leaves no stale series behind.
 */

/** A gauge filled by `fill` at each scrape. */
export function scrapedGauge(registry: Registry, name: string, help: string, labelNames: string[], fill: (g: Gauge) => void): void {
  new Gauge({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      fill(this);
    },
  });
}

/** A counter set to totals kept elsewhere (they only grow while their process runs) at each scrape. */
export function scrapedCounter(registry: Registry, name: string, help: string, labelNames: string[], fill: (c: Counter) => void): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      fill(this);
    },
  });
}
