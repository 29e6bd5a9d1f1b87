/**
 * The delay before retry number `attempt` (1 for the first): `initial` doubled per attempt up to
 * `max`, half of it fixed and half random (so streams failing together do not retry together).
 */
export function backoffDelay(attempt: number, initial: number, max: number, random: () => number = Math.random): number {
  const full = Math.min(max, initial * 2 ** Math.min(attempt - 1, 40));
  return Math.round(full / 2 + (random() * full) / 2);
}

/** Resolves after `ms`, or at once when `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
