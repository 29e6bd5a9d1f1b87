/**
 * The relay's clock minus the agent's, from acks (as NTP does from one exchange): a v2 ack carries
 * the relay's time when it answered (`at`) and the batch's own `sent_at`; the relay's instant lies
 * somewhere in the round trip, so the offset is `at - (sent_at + received) / 2`, wrong by at most
 * half the round trip. The estimate is the sample with the shortest round trip among the recent
 * ones: a batch that queued behind others says little about the clocks.
 */
export class ClockOffset {
  private readonly samples: { offsetMs: number; rttMs: number }[] = [];

  constructor(
    private readonly keep = 16,
    /** Round trips longer than this say nothing useful (a resend, a backlog at the relay). */
    private readonly maxRttMs = 10_000,
  ) {}

  /** One ack: the relay's time, the batch's sent_at (agent clock), and when the ack arrived (agent clock). */
  add(relayAt: number, sentAt: number, receivedAt: number): void {
    const rttMs = receivedAt - sentAt;
    if (rttMs < 0 || rttMs > this.maxRttMs) return;
    this.samples.push({ offsetMs: relayAt - (sentAt + receivedAt) / 2, rttMs });
    if (this.samples.length > this.keep) this.samples.shift();
  }

  /** The estimate in whole ms; null before the first usable ack. */
  get ms(): number | null {
    let best: { offsetMs: number; rttMs: number } | undefined;
    for (const s of this.samples) if (!best || s.rttMs < best.rttMs) best = s;
    return best ? Math.round(best.offsetMs) : null;
  }
}
