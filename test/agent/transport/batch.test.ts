import { describe, expect, it } from 'vitest';
import { planBatch, classifyHole, encodeBatch, MAX_SKIPPED_PER_BATCH } from '../../../agent/transport/batch.js';
import type { NewRecord } from '../../../agent/outbox/outbox.js';
import { eventBatch } from '../../../common/wire-v1.js';
import { eventBatchV2 } from '../../../common/wire-v2.js';
import { useOutboxFiles } from '../../helpers/outbox-files.js';

const files = useOutboxFiles('batch-test-', { synchronous: 'NORMAL' });
const recs = (from: number, to: number): NewRecord[] => Array.from({ length: to - from + 1 }, (_, i) => ({ id: `r${from + i}`, source: 'test:s', data: { n: from + i } }));
const envelope = { site: 's1', agent: 'a1', stream: 's', epoch: 'epoch-0001', boot: 'b' };
const limits = { maxRecords: 1_000, maxBytes: 10 * 1024 * 1024 };

describe('planBatch', () => {
  it('v2: declares holes before, between and after the records by reason, and the batch validates', () => {
    const o = files.open({ capPolicy: 'drop_oldest', maxEvents: 20 });
    o.append('s', recs(1, 22)); // drop_oldest drops 1..2
    o.deadLetterPending('s', [{ from: 5, to: 6, reason: 'bad' }, { from: 21, to: 22, reason: 'bad' }]);
    const plan = planBatch(o, 's', 0, limits, 2, true)!;
    expect(plan.skipped).toEqual([
      { from: 1, to: 2, reason: 'dropped' },
      { from: 5, to: 6, reason: 'dead_letter' },
      { from: 21, to: 22, reason: 'dead_letter' },
    ]);
    expect(plan.rows.map((r) => r.seq)).toEqual([3, 4, ...Array.from({ length: 14 }, (_, i) => 7 + i)]);
    expect([plan.first, plan.last]).toEqual([1, 22]);
    expect(eventBatchV2.safeParse(JSON.parse(encodeBatch(envelope, plan, 2, 1))).success).toBe(true);
  });

  it('v1: sends only consecutive records, and a hole only as dropped_upto once the relay caught up', () => {
    const o = files.open();
    o.append('s', recs(1, 10));
    o.deadLetterPending('s', [{ from: 4, to: 5, reason: 'bad' }]);
    const first = planBatch(o, 's', 0, limits, 1, true)!;
    expect(first.rows.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(planBatch(o, 's', 3, limits, 1, false)).toBeUndefined(); // the relay has not acked 3 yet
    const after = planBatch(o, 's', 3, limits, 1, true)!;
    expect(after).toMatchObject({ droppedUpto: 5, first: 4, last: 10 });
    expect(eventBatch.safeParse(JSON.parse(encodeBatch(envelope, after, 1, 1))).success).toBe(true);
  });

  it('ends a batch early rather than declare more skipped ranges than the envelope takes', () => {
    const o = files.open();
    const n = 2 * MAX_SKIPPED_PER_BATCH + 10;
    o.append('s', recs(1, 2 * n));
    // Every other record dead-lettered: one hole per record.
    o.deadLetterPending('s', Array.from({ length: n }, (_, i) => ({ from: 2 * i + 2, to: 2 * i + 2, reason: 'bad' })));
    const plan = planBatch(o, 's', 0, { maxRecords: 10_000, maxBytes: limits.maxBytes }, 2, true)!;
    expect(plan.skipped.length).toBeLessThanOrEqual(MAX_SKIPPED_PER_BATCH);
    expect(eventBatchV2.safeParse(JSON.parse(encodeBatch(envelope, plan, 2, 1))).success).toBe(true);
    // The next batch carries on from where this one ended.
    const next = planBatch(o, 's', plan.last, { maxRecords: 10_000, maxBytes: limits.maxBytes }, 2, true)!;
    expect(next.first).toBe(plan.last + 1);
  });

  it('classifies a hole beyond what was dropped or dead-lettered as pruned (the relay lost what was acked here)', () => {
    const o = files.open({ replayWindowMs: 0 });
    o.append('s', recs(1, 10));
    o.ack('s', 6);
    o.pruneAcked(true);
    expect(classifyHole(o, 's', 1, 6)).toEqual([{ from: 1, to: 6, reason: 'pruned' }]);
  });
});
