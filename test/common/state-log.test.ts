import { Writable } from 'node:stream';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateChangeLog } from '../../common/state-log.js';
import { createLogger } from '../../common/logger.js';
import { Outbox } from '../../agent/outbox/outbox.js';
import { testOutboxOptions } from '../helpers/outbox.js';
import { makeTempDir } from '../helpers/tmp.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, logger: createLogger({ level: 'info', destination }) };
}

describe('StateChangeLog', () => {
  it('logs the first change at once, counts the rest of the interval and ends it with one line of the state then', () => {
    let now = 1_000;
    const out: [string, number][] = [];
    const log = new StateChangeLog<'up' | 'down'>(60_000, (s, n) => out.push([s, n]), () => now);
    log.change('down');
    for (let i = 0; i < 999; i++) log.change(i % 2 === 0 ? 'up' : 'down'); // ends 'up'
    expect(out).toEqual([['down', 0]]);
    now += 60_000;
    log.flush();
    expect(out).toEqual([['down', 0], ['up', 998]]);
    // Quiet since: the next change logs at once.
    now += 60_000;
    log.change('down');
    expect(out.at(-1)).toEqual(['down', 0]);
  });
});

describe('outbox full / has space logs', () => {
  it('1 000 full ↔ space flips under a small cap give a bounded number of lines, with the count of the others', () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const { lines, logger } = capture();
      const outbox = new Outbox(testOutboxOptions(join(dir, 'outbox.db'), { maxEvents: 10, capPolicy: 'block', replayWindowMs: 0, logger }));
      let seq = 0;
      let flips = 0;
      for (let i = 0; i < 500; i++) {
        const r = outbox.append('s', Array.from({ length: 10 }, () => ({ id: `r${++seq}`, source: 't', data: { seq } })));
        expect(outbox.isFull()).toBe(true);
        outbox.ack('s', r.lastSeq);
        expect(outbox.isFull()).toBe(false);
        flips += 2;
      }
      outbox.close(); // flushes the summary
      expect(flips).toBe(1_000);
      const stateLines = lines.filter((l) => /^outbox (full: collectors paused|has space again)/.test(String(l.msg)));
      expect(stateLines.length).toBeLessThanOrEqual(2);
      expect(stateLines[0]).toMatchObject({ msg: expect.stringMatching(/^outbox full/) });
      // The summary says the state at the end (space) and how many changes it stands for.
      expect(stateLines.at(-1)).toMatchObject({ msg: expect.stringMatching(/^outbox has space again/), changes_not_logged: 998 });
    } finally {
      cleanup();
    }
  });
});
