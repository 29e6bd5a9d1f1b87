import type { ReconnectConfig } from './schema.js';
import { backoffDelay } from '../../../common/backoff.js';

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
    this.attempt++;
    return backoffDelay(this.attempt, this.cfg.initial, this.cfg.max, this.random);
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
