import { describe, expect, it } from 'vitest';
import { LogThrottle } from '../../common/log-throttle.js';

describe('LogThrottle', () => {
  it('logs the first occurrence, holds the rest back for the interval, then reports them', () => {
    const t = new LogThrottle(60_000);
    expect(t.take('k', 1, 0)).toEqual({ count: 1, suppressed: 0 });
    expect(t.take('k', 3, 10_000)).toBeUndefined();
    expect(t.take('k', 2, 59_999)).toBeUndefined();
    expect(t.take('k', 1, 60_000)).toEqual({ count: 6, suppressed: 5 });
    // Keys are independent.
    expect(t.take('other', 1, 60_001)).toEqual({ count: 1, suppressed: 0 });
  });

  it('reset makes the next occurrence log at once', () => {
    const t = new LogThrottle(60_000);
    t.take('k', 1, 0);
    t.reset('k');
    expect(t.take('k', 1, 1)).toEqual({ count: 1, suppressed: 0 });
    t.reset();
    expect(t.take('k', 1, 2)).toEqual({ count: 1, suppressed: 0 });
  });

  it('forgets keys that went quiet once it holds many, so per-file keys do not grow without bound', () => {
    const t = new LogThrottle(1_000);
    for (let i = 0; i < 1_000; i++) t.take(`file-${i}`, 1, 0);
    // All 1 000 are quiet by now: the next new key sweeps them, and each logs at once again.
    expect(t.take('new', 1, 5_000)).toEqual({ count: 1, suppressed: 0 });
    expect(t.take('file-1', 1, 5_001)).toEqual({ count: 1, suppressed: 0 });
    expect(t.take('file-1', 1, 5_002)).toBeUndefined();
  });
});
