import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { backoffDelay } from '../../common/backoff.js';

describe('backoffDelay', () => {
  it('stays in the upper half of initial × 2^(attempt-1), capped at max', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 600_000 }), fc.double({ min: 0, max: 1, noNaN: true }), (attempt, initial, max, r) => {
        const ceiling = Math.min(max, initial * 2 ** (attempt - 1));
        const d = backoffDelay(attempt, initial, max, () => r);
        expect(d).toBeGreaterThanOrEqual(Math.floor(ceiling / 2));
        expect(d).toBeLessThanOrEqual(Math.ceil(ceiling));
      }),
    );
  });

  it('doubles per attempt until the cap: 100, 200, 400, 800, 1000, 1000 ms with no jitter drawn', () => {
    expect([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(a, 100, 1_000, () => 1))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffDelay(3, 100, 1_000, () => 0)).toBe(200);
  });
});
