import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { recordId, recordKey, SQL_MAX_ID_LENGTH } from '../../../../agent/collectors/sql/record.js';
import { MAX_ID_LENGTH } from '../../../../common/wire-v2.js';

describe('SQL record id', () => {
  it('source/table/key/version with key parts percent-encoded', () => {
    expect(recordId('sql:erp', 'dbo.OrderLines', [1041, 3], '57')).toBe('sql:erp/dbo.OrderLines/1041|3/57');
    expect(recordId('sql:erp', 'dbo.Items', ['A/7|x%', '~b'], '0x00000000000007D1')).toBe('sql:erp/dbo.Items/A%2F7%7Cx%25|%7Eb/0x00000000000007D1');
    expect(recordKey(['a|b', 'c'])).not.toBe(recordKey(['a', 'b|c']));
    expect(recordKey(['a|b', 'c'])).toBe('a%7Cb|c');
  });

  it('a long key is hashed to stay within the limit, deterministically', () => {
    const long = 'K'.repeat(300);
    const id = recordId('sql:erp', 'dbo.Notes', [long], '99');
    const expectedHash = createHash('sha256').update(long).digest('hex').slice(0, 32);
    expect(id).toBe(`sql:erp/dbo.Notes/~${expectedHash}/99`);
    expect(id.length).toBeLessThanOrEqual(SQL_MAX_ID_LENGTH);
    expect(SQL_MAX_ID_LENGTH).toBeLessThanOrEqual(MAX_ID_LENGTH);
    expect(recordId('sql:erp', 'dbo.Notes', [long], '99')).toBe(id);
    expect(recordId('sql:erp', 'dbo.Notes', [`${long}x`], '99')).not.toBe(id);
    // Exactly at the limit: kept as is.
    const prefix = 'sql:erp/t/';
    const fit = 'k'.repeat(SQL_MAX_ID_LENGTH - prefix.length - '/1'.length);
    expect(recordId('sql:erp', 't', [fit], '1')).toBe(`${prefix}${fit}/1`);
    expect(recordId('sql:erp', 't', [`${fit}k`], '1')).toMatch(/^sql:erp\/t\/~[0-9a-f]{32}\/1$/);
  });

  it('an over-long source and table hash the whole id', () => {
    const id = recordId('sql:' + 's'.repeat(150), 'dbo.' + 't'.repeat(100), [1], '2');
    expect(id).toMatch(/^~[0-9a-f]{64}$/);
    expect(id.length).toBeLessThanOrEqual(SQL_MAX_ID_LENGTH);
  });

});
