import { describe, expect, it } from 'vitest';
import { joinKey } from '../../common/record-key.js';

describe('joinKey', () => {
  it('joins parts with | and percent-encodes % and | in them (the 0.2 file-drop encoding: ids keep their value)', () => {
    expect(joinKey(['SO-1', '10'])).toBe('SO-1|10');
    expect(joinKey(['a|b', '100%', 'x/y'])).toBe('a%7Cb|100%25|x/y');
  });

  it('with slash: true encodes / too, and null or undefined parts are empty', () => {
    expect(joinKey(['x/y', null, undefined, 7], { slash: true })).toBe('x%2Fy|||7');
  });

  it('keeps distinct keys distinct (no two part lists join alike)', () => {
    const lists = [['a|b'], ['a', 'b'], ['a%7Cb'], ['a/b'], ['a', 'b', '']];
    const joined = lists.map((l) => joinKey(l, { slash: true }));
    expect(new Set(joined).size).toBe(lists.length);
  });
});
