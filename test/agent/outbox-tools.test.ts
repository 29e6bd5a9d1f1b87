import { describe, expect, it } from 'vitest';
import { progress } from '../../agent/outbox-tools.js';
import type { ResendProgress } from '../../agent/outbox/outbox.js';

const at = (resent: number, total = 40): ResendProgress => ({ stream: 's', from: 1, upto: total, total, resent, notRetained: null });

describe('outbox resend progress', () => {
  it('on a terminal: one bar redrawn in place, ended with a newline', () => {
    let text = '';
    const bar = progress({ write: (t) => void (text += t), isTTY: true }, false);
    for (const n of [10, 20, 40]) bar.update(at(n));
    bar.end();
    expect(text.split('\r').filter(Boolean)).toEqual([
      `[${'#'.repeat(8)}${' '.repeat(22)}] 10/40 25%`,
      `[${'#'.repeat(15)}${' '.repeat(15)}] 20/40 50%`,
      `[${'#'.repeat(30)}] 40/40 100%\n`,
    ]);
  });

  it('elsewhere (a log, a pipe): a line per N records and one at the end; nothing with --json', () => {
    let text = '';
    const lines = progress({ write: (t) => void (text += t), isTTY: false }, false, 15);
    for (const n of [10, 20, 30, 40]) lines.update(at(n));
    lines.end();
    expect(text).toBe('resent 20/40\nresent 40/40\n');
    let quiet = '';
    const q = progress({ write: (t) => void (quiet += t), isTTY: true }, true);
    q.update(at(40));
    q.end();
    expect(quiet).toBe('');
  });
});
