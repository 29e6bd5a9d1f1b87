/**
 * Acceptance: kill -9 a child process appending in a loop at random moments, 20 times;
 * afterwards every stream's seqs are contiguous and every committed checkpoint matches its records.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openSqlite } from '../../../agent/outbox/sqlite.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Outbox } from '../../../agent/outbox/outbox.js';
import { wireRecord } from '../../../common/wire-v1.js';
import { waitFor } from '../../helpers/net.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { testOutboxOptions } from '../../helpers/outbox.js';

const SCRIPT = fileURLToPath(new URL('../../helpers/outbox-append-loop.ts', import.meta.url));
const STREAMS = ['alpha', 'beta', 'gamma'] as const;
const COLLECTOR = 'crash-test';
const RUNS = 20;

interface Ready {
  epoch: string;
  counters: Record<string, number>;
}

interface Run {
  child: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<[number | null, NodeJS.Signals | null]>;
}

function start(dbPath: string): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, dbPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const run: Run = { child, stdout: '', stderr: '', exited: once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]> };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (run.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (run.stderr += d));
  return run;
}

/** Where `values` first departs from 1, 2, 3, …: null when it is exactly 1..values.length. */
function firstBreak(values: readonly number[]): { index: number; expected: number; got: number[] } | null {
  const i = values.findIndex((v, k) => v !== k + 1);
  return i < 0 ? null : { index: i, expected: i + 1, got: values.slice(Math.max(0, i - 2), i + 3) };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let tmp: ReturnType<typeof makeTempDir>;
let live: Run | undefined;

beforeEach(() => {
  tmp = makeTempDir('outbox-crash-');
});

afterEach(async () => {
  if (live && live.child.exitCode === null && live.child.signalCode === null) {
    live.child.kill('SIGKILL');
    await live.exited;
  }
  live = undefined;
  tmp.cleanup();
});

describe('outbox under kill -9', () => {
  it(`keeps seqs contiguous and checkpoints matching their records across ${RUNS} SIGKILLs`, async () => {
    const dbPath = join(tmp.dir, 'outbox.db');
    const readies: Ready[] = [];

    for (let i = 0; i < RUNS; i++) {
      const run = start(dbPath);
      live = run;
      let exitedEarly = false;
      void run.exited.then(() => (exitedEarly = true));
      const line = await waitFor(
        `child ${i} to report ready`,
        () => {
          if (exitedEarly) throw new Error(`child ${i} exited before it was ready; stderr:\n${run.stderr}`);
          return /^ready (.*)$/m.exec(run.stdout)?.[1];
        },
        20_000,
        10,
      );
      readies.push(JSON.parse(line) as Ready);

      await sleep(50 + Math.floor(Math.random() * 351));
      expect(exitedEarly, `child ${i} stopped on its own; stderr:\n${run.stderr}`).toBe(false);
      run.child.kill('SIGKILL');
      const [code, signal] = await run.exited;
      expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
      live = undefined;
    }

    // The epoch is made once and survives every crash.
    expect(new Set(readies.map((r) => r.epoch)).size).toBe(1);
    // Every child resumed from where the previous one's last commit left it: never backwards.
    for (let i = 1; i < readies.length; i++) {
      for (const s of STREAMS) expect(readies[i]!.counters[s]!).toBeGreaterThanOrEqual(readies[i - 1]!.counters[s]!);
    }

    // Raw look at the file first: no duplicate (stream, seq), per-stream seqs span 1..N exactly.
    const raw = openSqlite(dbPath, { readonly: true });
    const spans = raw
      .prepare(
        `SELECT stream, sum(last_seq - first_seq + 1) AS n, sum(last_seq - first_seq + 1) AS d, min(first_seq) AS lo, max(last_seq) AS hi
         FROM chunks GROUP BY stream ORDER BY stream`,
      )
      .all() as { stream: string; n: number; d: number; lo: number; hi: number }[];
    // Chunks of a stream tile its seqs exactly: each starts right after the previous one ends.
    const misjoined = (
      raw
        .prepare(
          `SELECT count(*) AS n FROM (SELECT first_seq, lag(last_seq) OVER (PARTITION BY stream ORDER BY first_seq) AS prev FROM chunks)
           WHERE prev IS NOT NULL AND first_seq != prev + 1`,
        )
        .get() as { n: number }
    ).n;
    raw.close();
    expect(misjoined).toBe(0);
    expect(spans.map((s) => s.stream)).toEqual([...STREAMS]);
    for (const s of spans) expect(s).toEqual({ stream: s.stream, n: s.hi, d: s.hi, lo: 1, hi: s.hi });

    const outbox = new Outbox(testOutboxOptions(dbPath));
    try {
      expect(outbox.epoch).toBe(readies[0]!.epoch);
      let total = 0;
      for (const stream of STREAMS) {
        const rows = outbox.readPending(stream, 0, Number.MAX_SAFE_INTEGER);
        const n = rows.length;
        expect(n, `stream ${stream} got no records at all: the test appended nothing`).toBeGreaterThan(0);
        total += n;
        // seqs are exactly 1..N, in order: no gap, no duplicate.
        expect(firstBreak(rows.map((r) => r.seq)), `seqs of ${stream}`).toBeNull();
        // The collector's counters are exactly 1..N in seq order: nothing lost or doubled across crashes.
        const records = rows.map((r) => wireRecord.parse(JSON.parse(r.payload)));
        const counters = records.map((r) => (r.data as { counter: number }).counter);
        expect(firstBreak(counters), `data counters of ${stream}`).toBeNull();
        expect(records.every((r) => (r.data as { stream: string }).stream === stream && r.id === `${stream}-${r.seq}`)).toBe(true);
        // The committed checkpoint matches its records exactly.
        expect(outbox.getCheckpoint<{ count: number }>(COLLECTOR, stream)).toEqual({ count: n });
        const status = outbox.streamStatus().find((s) => s.stream === stream)!;
        expect({ lastSeq: status.lastSeq, pending: status.pending }).toEqual({ lastSeq: n, pending: n });
        // The last child resumed from a committed state, so it is at most N.
        expect(readies.at(-1)!.counters[stream]!).toBeLessThanOrEqual(n);
      }
      expect(outbox.usage().events).toBe(total);
      // And the next append continues the sequence.
      const next = outbox.append('alpha', [{ id: 'after', source: 'test', data: null }]);
      expect(next.firstSeq).toBe(spans[0]!.hi + 1);
    } finally {
      outbox.close();
    }
  }, 180_000); // 20 child processes (tsx start-up each): ~30 s alone, past 60 s on a loaded 2-core VM
});
