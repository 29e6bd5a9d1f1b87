/**
 * Keeps a repeating event to one log line per interval and key: the first occurrence logs,
 * the rest are counted and reported with the next line. A day of a broken link or a full
 * outbox must not become hundreds of thousands of identical lines.
 */
export class LogThrottle {
  private readonly last = new Map<string, { at: number; held: number }>();

  constructor(private readonly intervalMs: number) {}

  /**
   * Records `count` occurrences of `key`. Returns what to log (this call's count plus those held
   * back since the last line) when a line is due, otherwise undefined.
   */
  take(key: string, count = 1, now = Date.now()): { count: number; suppressed: number } | undefined {
    const e = this.last.get(key);
    if (e && now - e.at < this.intervalMs) {
      e.held += count;
      return undefined;
    }
    const held = e?.held ?? 0;
    if (this.last.size >= 1_000) this.forgetQuiet(now); // keys can be file paths: do not grow forever
    this.last.set(key, { at: now, held: 0 });
    return { count: count + held, suppressed: held };
  }

  private forgetQuiet(now: number): void {
    // Quiet keys go; so do long-idle ones whose held-back count will never be reported by a repeat.
    for (const [k, v] of this.last) {
      const idle = now - v.at;
      if ((idle >= this.intervalMs && v.held === 0) || idle >= this.intervalMs * 10) this.last.delete(k);
    }
  }

  /** Forgets a key, so its next occurrence logs at once (e.g. after recovery). */
  reset(key?: string): void {
    if (key === undefined) this.last.clear();
    else this.last.delete(key);
  }
}
