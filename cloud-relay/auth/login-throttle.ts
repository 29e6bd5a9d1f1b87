/**
 * Slows password guessing without a dependency: each failed login is answered after a delay that
 * grows with the recent failures of its client address (up to MAX_DELAY_MS), and after LOCK_AFTER
 * failures within WINDOW_MS that address gets 429 until the window passes. Bounded in memory.
 */
const WINDOW_MS = 10 * 60_000;
const LOCK_AFTER = 10;
const STEP_MS = 250;
const MAX_DELAY_MS = 2_000;
const MAX_KEYS = 10_000;

interface Failures {
  count: number;
  first_at: number;
}

export class LoginThrottle {
  private readonly byKey = new Map<string, Failures>();

  constructor(private readonly clock: () => number = Date.now) {}

  /** Seconds until this client may try again, or 0 when it may now. */
  retryAfterS(key: string): number {
    const f = this.current(key);
    if (!f || f.count < LOCK_AFTER) return 0;
    return Math.ceil((f.first_at + WINDOW_MS - this.clock()) / 1000);
  }

  /** Records a failure; returns how long to hold the answer back. */
  failed(key: string): number {
    let f = this.current(key);
    if (!f) {
      if (this.byKey.size >= MAX_KEYS) this.byKey.delete(this.byKey.keys().next().value!);
      f = { count: 0, first_at: this.clock() };
      this.byKey.set(key, f);
    }
    f.count++;
    return Math.min(MAX_DELAY_MS, STEP_MS * f.count);
  }

  succeeded(key: string): void {
    this.byKey.delete(key);
  }

  private current(key: string): Failures | undefined {
    const f = this.byKey.get(key);
    if (f && this.clock() - f.first_at >= WINDOW_MS) {
      this.byKey.delete(key);
      return undefined;
    }
    return f;
  }
}
