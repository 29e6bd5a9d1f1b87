/**
 * Logs the changes of a state that can flip fast — outbox full ↔ has space, broker connected ↔
 * lost — without a line per flip: the first change logs at once; changes within `intervalMs` of
 * the last line are counted, and when that interval ends one summary line gives the state then
 * and how many changes went unlogged. The last line always tells the state as it is (unless it
 * flipped back to what the previous line said, with the count saying so).
 */
export class StateChangeLog<S extends string> {
  private lastLineAt = Number.NEGATIVE_INFINITY;
  private held = 0;
  private current: S | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly intervalMs: number,
    /** Writes one line: `suppressed` changes before this one went unlogged. */
    private readonly write: (state: S, suppressed: number) => void,
    private readonly now: () => number = Date.now,
  ) {}

  change(state: S): void {
    this.current = state;
    const t = this.now();
    if (this.timer === undefined && t - this.lastLineAt >= this.intervalMs) {
      this.line(state, 0, t);
      return;
    }
    this.held++;
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.lastLineAt + this.intervalMs - t));
      this.timer.unref();
    }
  }

  /** Writes the summary of held-back changes now, if any (at the interval's end, or at a close). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.held === 0 || this.current === undefined) return;
    const held = this.held;
    this.held = 0;
    this.line(this.current, held - 1, this.now());
  }

  private line(state: S, suppressed: number, at: number): void {
    this.lastLineAt = at;
    this.write(state, suppressed);
  }
}
