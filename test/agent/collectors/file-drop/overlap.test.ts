import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { nameMatcher, TEMP_NAMES, type NameRules } from '../../../../agent/collectors/file-drop/names.js';
import { candidateNames, expandBraces, fileDropOverlap, sameFolder, sharedName } from '../../../../agent/collectors/file-drop/overlap.js';
import { fileDropSchema } from '../../../../agent/collectors/file-drop/schema.js';

const rules = (include: string[], exclude: string[] = [], case_sensitive = false): NameRules => ({ include, exclude, case_sensitive });

describe('nameMatcher', () => {
  it('takes included names, ignoring case unless case_sensitive', () => {
    expect(nameMatcher(rules(['*.csv']))('ORDERS.CSV')).toBe(true);
    expect(nameMatcher(rules(['*.csv'], [], true))('ORDERS.CSV')).toBe(false);
    expect(nameMatcher(rules(['*.csv'], [], true))('orders.csv')).toBe(true);
  });

  it('never takes temp names (in any case) or dot files, nor excluded names', () => {
    const takes = nameMatcher(rules(['*'], ['old-*'], true));
    for (const name of ['a.tmp', 'A.TMP', 'b.csv.part', '~lock.csv', '.hidden', 'x.crdownload', 'old-1.csv']) expect(takes(name), name).toBe(false);
    expect(takes('a.csv')).toBe(true);
    expect(TEMP_NAMES).toContain('*.filepart');
  });
});

describe('sameFolder', () => {
  it('compares resolved paths: ./, trailing slashes and .. do not matter', () => {
    expect(sameFolder('./in', 'in/')).toBe(true);
    expect(sameFolder('./in/../in/', 'in')).toBe(true);
    expect(sameFolder('./in/a', './in/b')).toBe(false);
    expect(sameFolder('in', 'In')).toBe(false); // case matters on Linux
  });

  it('ignores case and slash direction on Windows', () => {
    expect(sameFolder('C:\\Drop\\In', 'c:/drop/in/', path.win32)).toBe(true);
  });
});

describe('sharedName', () => {
  const cases: [string, NameRules, NameRules, string | undefined][] = [
    ['orders* vs *.csv', rules(['orders*']), rules(['*.csv']), 'orders.csv'],
    ['the default * takes anything', rules(['*']), rules(['*.csv']), 'x.csv'],
    ['? filled from the other pattern', rules(['order?.csv']), rules(['*1.csv']), 'order1.csv'],
    ['braces expanded', rules(['{orders,stock}_*.csv']), rules(['STOCK*']), 'stock_x.csv'],
    ['two wildcards', rules(['*_2024_*.csv']), rules(['sales*']), 'sales_2024_x.csv'],
    ['an exclude leaves other shared names', rules(['*.csv'], ['orders.csv']), rules(['orders*']), 'ordersx.csv'],
    ['different extensions', rules(['*.csv']), rules(['*.tsv']), undefined],
    ['temp names are nobody’s', rules(['*.tmp']), rules(['*']), undefined],
    ['case-sensitive on both', rules(['*.csv'], [], true), rules(['*.CSV'], [], true), undefined],
  ];
  it.each(cases)('%s', (_name, a, b, expected) => {
    const found = sharedName(a, b);
    expect(found).toBe(expected);
    // Never a false overlap: the witness is a real name both take.
    if (found !== undefined) expect(nameMatcher(a)(found) && nameMatcher(b)(found)).toBe(true);
  });
});

describe('fileDropOverlap', () => {
  const cfg = (over: object) => fileDropSchema.parse({ type: 'file-drop', name: 'c', path: './in', ...over });

  it('points at the path key and says what both would take', () => {
    expect(fileDropOverlap(cfg({ include: ['orders*'] }), cfg({ path: 'in/', include: ['*.csv'] }))).toEqual({
      key: 'path',
      description:
        'both watch the same folder (./in and in/) and would both take a file named "orders.csv" (give each its own folder, or include/exclude patterns that keep them apart)',
    });
    expect(fileDropOverlap(cfg({}), cfg({ path: './other' }))).toBeUndefined();
  });
});

describe('candidate names', () => {
  it('fill wildcards with x, nothing, and the other pattern’s literal pieces', () => {
    expect(candidateNames('orders*', '*.csv')).toEqual(['ordersx', 'orders', 'orders.csv', 'orders.csvx', 'ordersx.csv']);
    expect(expandBraces('{a,{b,c}}_{1,2}')).toEqual(['a_1', 'a_2', 'b_1', 'b_2', 'c_1', 'c_2']);
    expect(expandBraces('no{brace')).toEqual(['no{brace']);
  });
});
