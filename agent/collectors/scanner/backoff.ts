import type { ReconnectConfig } from './schema.js';

/**
 * The wait before the next reconnect: doubling from `initial` up to `max`, each wait drawn from its
 * upper half (jitter), so devices that dropped together (a switch rebooted) do not all knock at
 * once, and a device that is gone for the night costs one attempt per `max`.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly cfg: ReconnectConfig,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.cfg.max, this.cfg.initial * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
