/**
 * The wait before retry number `attempt` (1 for the first): `initial` doubled per attempt up to
 * `max`, drawn from the upper half of that (jitter), so peers that failed together (streams of one
 * sink, scanners behind one switch) do not all retry at once.
 */
export function backoffDelay(attempt: number, initial: number, max: number, random: () => number = Math.random): number {
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
