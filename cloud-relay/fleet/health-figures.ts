import type { Health } from '../../common/wire-v2.js';

/** Figures of one health message that the fleet views add up (backlog, collectors in error). */
export interface HealthFigures {
  /** Pending events over all streams. */
  pending: number;
  /** Age of the oldest pending event over all streams at the health's `at` (agent clock: at - oldest); null when none. */
  oldest_pending_age_ms: number | null;
  /** Collectors whose state is `error` (backing-off ones retry by themselves and are not counted). */
  collectors_in_error: number;
}

export function healthFigures(h: Health): HealthFigures {
  let pending = 0;
  let oldest: number | null = null;
  for (const s of h.streams) {
    pending += s.pending;
    if (s.oldest_pending_at !== null && (oldest === null || s.oldest_pending_at < oldest)) oldest = s.oldest_pending_at;
  }
  let inError = 0;
  for (const c of h.collectors) if (c.state === 'error') inError++;
  return { pending, oldest_pending_age_ms: oldest === null ? null : Math.max(0, h.at - oldest), collectors_in_error: inError };
}

/** A stream's oldest pending age at the health's `at`, in ms (agent clock); null when nothing is pending. */
export function streamOldestAgeMs(h: Health, s: Health['streams'][number]): number | null {
  return s.oldest_pending_at === null ? null : Math.max(0, h.at - s.oldest_pending_at);
}
