import { describe, expect, it } from 'vitest';
import { checkTimeZone, localDateTimeToIso } from '../../../agent/databases/time-zone.js';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
};

describe('zone-less date-times read in the ERP server\'s zone', () => {
  it('→ UTC outside DST transitions, fraction digits kept', () => {
    expect(localDateTimeToIso('2026-07-15 12:00:00', 'UTC')).toBe('2026-07-15T12:00:00.000Z');
    expect(localDateTimeToIso('2026-07-15 12:00:00', 'America/New_York')).toBe('2026-07-15T16:00:00.000Z');
    // Year below 100 (datetime2 goes down to 0001) is not taken for 19xx.
    expect(localDateTimeToIso('0050-06-01 00:00:00', 'UTC')).toBe('0050-06-01T00:00:00.000Z');
    expect(localDateTimeToIso('2026-01-15T12:00:00.123456', 'Europe/Berlin')).toBe('2026-01-15T11:00:00.123456Z');
  });

  it('DST gap: a wall time that never existed is moved forward by the gap (offset before the change)', () => {
    // Europe/Berlin 2026-03-29: 02:00 CET → 03:00 CEST; 02:30 does not exist, read as 03:30 CEST.
    expect(localDateTimeToIso('2026-03-29 02:30:00', 'Europe/Berlin')).toBe('2026-03-29T01:30:00.000Z');
    expect(localDateTimeToIso('2026-03-29 01:59:59', 'Europe/Berlin')).toBe('2026-03-29T00:59:59.000Z');
    expect(localDateTimeToIso('2026-03-29 03:00:00', 'Europe/Berlin')).toBe('2026-03-29T01:00:00.000Z');
    // New York 2026-03-08: 02:00 EST → 03:00 EDT.
    expect(localDateTimeToIso('2026-03-08 02:30:00', 'America/New_York')).toBe('2026-03-08T07:30:00.000Z');
  });

  it('DST overlap: a wall time that existed twice is the earlier instant', () => {
    // Europe/Berlin 2026-10-25: 03:00 CEST → 02:00 CET; 02:30 happened at 00:30Z and at 01:30Z.
    expect(localDateTimeToIso('2026-10-25 02:30:00', 'Europe/Berlin')).toBe('2026-10-25T00:30:00.000Z');
    expect(localDateTimeToIso('2026-10-25 01:59:59', 'Europe/Berlin')).toBe('2026-10-24T23:59:59.000Z');
    expect(localDateTimeToIso('2026-10-25 03:00:00', 'Europe/Berlin')).toBe('2026-10-25T02:00:00.000Z');
    // New York 2026-11-01: 01:30 happened at 05:30Z (EDT) and 06:30Z (EST).
    expect(localDateTimeToIso('2026-11-01 01:30:00', 'America/New_York')).toBe('2026-11-01T05:30:00.000Z');
  });

  it('an unknown zone is a config error', () => {
    expect(code(() => checkTimeZone('Mars/Olympus_Mons'))).toBe('ERP_CONFIG_INVALID');
    expect(code(() => localDateTimeToIso('2026-01-01 00:00:00', 'Nowhere/Zone'))).toBe('ERP_CONFIG_INVALID');
    expect(() => checkTimeZone('Europe/Berlin')).not.toThrow();
  });

});
