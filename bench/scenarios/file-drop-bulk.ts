import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { csvParseRate } from '../lib/csv-parse-rate.js';
import { measureFileDrop, STABLE_TIME, type FileDropMeasured } from '../lib/file-drop-pass.js';
import { writeOrderLinesCsv } from '../lib/order-lines-csv.js';
import { DIST } from '../lib/pipeline.js';
import type { Dist, Scenario, ScenarioContext } from '../types.js';

const FILE = 'order-lines.csv';
const MB = 2 ** 20;

/**
 * Issue #7 item 5: an ERP order-lines export (2 M rows, ~100 bytes each) renamed into a file-drop
 * folder, timed until the relay has committed every row; csv-parse alone on the same file in the
 * same run is the reference the end-to-end rate is held against. With `--baseline REF` that
 * revision's agent and relay are measured too, alternately (before/after a collector rewrite).
 */
export const fileDropBulk: Scenario = {
  name: 'file-drop-bulk',
  description: 'a 2 M-row CSV (~200 MB) renamed into a file-drop folder → relay store complete, against csv-parse alone on the same file; agent peak RSS',
  async run(ctx: ScenarioContext) {
    const rows = Math.max(1_000, Math.round((ctx.quick ? 100_000 : 2_000_000) * ctx.scale));
    const source = join(ctx.dir, FILE);
    const bytes = writeOrderLinesCsv(source, rows);
    ctx.param('rows', rows);
    ctx.param('file_bytes', bytes);
    ctx.param('collector', `file-drop, csv, no key columns, stable_time ${STABLE_TIME}`);
    ctx.log(`${rows} rows, ${(bytes / MB).toFixed(1)} MB`);
    // The run waits for the collector through the agent's control socket (0.2 on): a baseline
    // before it (0.1, durable-e2e's usual one) cannot be measured here and is left out, said so.
    const base = ctx.baseline && hasControlSocket(ctx.baseline.dist) ? ctx.baseline : undefined;
    if (ctx.baseline && !base) ctx.note(`baseline ${ctx.baseline.ref} not measured: its agent has no control socket to report its collector running (releases before 0.2)`);
    if (base) ctx.param('baseline', `${base.ref} (${base.sha.slice(0, 12)})`);
    for (let r = 0; r < ctx.repeats; r++) {
      const parser = await csvParseRate(source);
      if (parser.rows !== rows) throw new Error(`csv-parse read ${parser.rows} rows, expected ${rows}`);
      const parserRate = rows / parser.seconds;
      ctx.record('csv-parse alone, same file', 'rows/s', parserRate, 'reference');
      // With a baseline (the collector before a rewrite), the two alternate, as in durable-e2e.
      const order = !base ? ['now'] : r % 2 === 0 ? ['now', 'baseline'] : ['baseline', 'now'];
      for (const which of order) {
        const m = await measureFileDrop(ctx, join(ctx.dir, `run-${r}-${which}`), source, rows, which === 'now' ? DIST : base!.dist);
        recordRun(ctx, rows, parserRate, m, which === 'now' ? undefined : base!.ref);
      }
    }
    ctx.note('"in the outbox" times are the capture stamps (ts) of the first and last record as the relay stored them: the writer stamps a batch just before committing it to the outbox');
    ctx.note('"rename → first row in the outbox" is stable_time plus whatever the collector does before its first append (since #7: one pass that hashes, detects the encoding and validates the whole file; the ingest pass parses it again. Release 0.2 hashed, validated and ingested in three passes)');
  },
};

/** One run's figures; a baseline's carry its ref in their names and no target. */
function recordRun(ctx: ScenarioContext, rows: number, parserRate: number, m: FileDropMeasured, baselineRef?: string): void {
  const label = baselineRef ? `, baseline ${baselineRef}` : '';
  const record = (name: string, unit: string, value: number, target?: string) => ctx.record(`${name}${label}`, unit, value, baselineRef ? undefined : target);
  const rate = rows / m.endToEnd;
  record('end to end: rename → relay has every row', 'rows/s', rate, '>= 0.5x csv-parse');
  record('ratio to csv-parse alone', 'x', rate / parserRate, '>= 0.5');
  record('agent RSS (max)', 'MB', m.rssMb, '< 120');
  record('rename → first row in the outbox', 's', m.firstCaptured);
  record('rename → every row in the outbox', 's', m.allCaptured);
  record('rename → relay has every row', 's', m.endToEnd);
  // One stamp per batch: with a file of a few batches the pass has no measurable length.
  if (m.allCaptured > m.firstCaptured) record('collector ingest pass (first → last row into the outbox)', 'rows/s', rows / (m.allCaptured - m.firstCaptured));
  record('agent CPU over the run (100 = one core)', '%', m.agentCpu);
  record('relay CPU over the run (100 = one core)', '%', m.relayCpu);
}

function hasControlSocket(dist: Dist): boolean {
  return existsSync(join(dirname(dist.agent), 'state', 'control.js'));
}
