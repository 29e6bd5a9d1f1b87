import { describe, expect, it } from 'vitest';
import { ClockOffset } from '../../../agent/transport/clock-offset.js';

describe('clock offset from acks', () => {
  it('is the relay time minus the midpoint of the round trip, from the shortest round trip among the recent acks', () => {
    const c = new ClockOffset(3);
    expect(c.ms).toBeNull();
    c.add(10_500, 1_000, 1_200); // relay 9 400 ms ahead, round trip 200 ms
    expect(c.ms).toBe(9_400);
    c.add(20_000, 5_000, 7_000); // queued behind others: round trip 2 s, ignored while a shorter one is kept
    expect(c.ms).toBe(9_400);
    c.add(30_050, 20_600, 20_640); // 40 ms round trip: the best
    expect(c.ms).toBe(9_430);
  });

  it('ignores impossible and useless samples, and forgets old ones', () => {
    const c = new ClockOffset(2, 5_000);
    c.add(100, 2_000, 1_000); // received before sent
    c.add(100, 0, 6_000); // round trip over the limit
    expect(c.ms).toBeNull();
    c.add(1_000, 0, 10); // +995
    c.add(2_000, 1_000, 1_100); // +950, rtt 100
    c.add(3_000, 2_000, 2_200); // +900, rtt 200: the 10 ms sample is gone (keep 2)
    expect(c.ms).toBe(950);
  });
});
