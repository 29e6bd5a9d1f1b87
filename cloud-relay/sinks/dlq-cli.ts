import { parseArgs } from 'node:util';
import { createLogger } from '../../common/logger.js';
import { describeError, fail, loadOrExit } from '../../common/cli.js';
import { scrubProcessOutput, secretValues } from '../../common/secrets.js';
import { loadRelayConfig } from '../config.js';
import { openRelayStore } from '../store/open-store.js';
import type { DeadLetterFilter, DeadLetterRow } from '../store/delivery.js';

export const DLQ_USAGE = `usage: cloud-relay dlq <list|retry|discard> --config FILE [filters]
  filters: --sink NAME --site SITE --agent AGENT --stream STREAM --id N (repeatable) --status dead|retry
  list:    [--limit N] [--json]   rows of the dead-letter table (oldest stream and seq first)
  retry:   marks dead rows for delivery again; a running relay delivers them at its next poll
  discard: deletes rows (needs a filter, or --all)`;

/**
 * `cloud-relay dlq …`: acts on the dead-letter table in the relay's store (the same store the
 * running relay uses; it picks up rows marked for retry by itself). Returns the exit code.
 */
export async function runDlq(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        sink: { type: 'string' },
        site: { type: 'string' },
        agent: { type: 'string' },
        stream: { type: 'string' },
        id: { type: 'string', multiple: true },
        status: { type: 'string' },
        limit: { type: 'string' },
        json: { type: 'boolean' },
        all: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return fail(`${(err as Error).message}\n${DLQ_USAGE}`, 2);
  }
  const v = parsed.values;
  const command = parsed.positionals[0];
  if (v.help) return fail(DLQ_USAGE, 0);
  if (!command || !['list', 'retry', 'discard'].includes(command)) return fail(`${command ? `unknown dlq command "${command}"\n` : ''}${DLQ_USAGE}`, 2);
  if (!v.config) return fail(`--config FILE is required\n${DLQ_USAGE}`, 2);
  if (v.status !== undefined && v.status !== 'dead' && v.status !== 'retry') return fail(`--status must be dead or retry, not "${v.status}"`, 2);
  const ids = v.id?.map((s) => Number(s));
  if (ids?.some((n) => !Number.isSafeInteger(n) || n <= 0)) return fail(`--id takes a row id (a positive integer), got ${v.id!.join(', ')}`, 2);
  const limit = v.limit === undefined ? 1_000 : Number(v.limit);
  if (!Number.isSafeInteger(limit) || limit <= 0) return fail(`--limit takes a positive integer, got "${v.limit}"`, 2);
  const filter: DeadLetterFilter = { sink: v.sink, site: v.site, agent: v.agent, stream: v.stream, status: v.status as DeadLetterFilter['status'], ids };
  const filtered = Object.values(filter).some((x) => x !== undefined);
  if (command === 'discard' && !filtered && !v.all) return fail('dlq discard deletes rows for good: give a filter (--sink, --site, --agent, --stream, --id, --status) or --all', 2);

  const cfg = loadOrExit(() => loadRelayConfig(v.config!));
  const secrets = secretValues(cfg);
  scrubProcessOutput(secrets);
  const log = createLogger({ level: 'warn', name: 'cloud-relay', secrets });
  let store;
  try {
    store = await openRelayStore(cfg.store, { dedupeWindowMs: cfg.dedupe.window, log });
  } catch (err) {
    return fail(describeError(err));
  }
  try {
    const dlq = store.delivery;
    if (command === 'list') {
      const rows = await dlq.listDeadLetters(filter, limit);
      if (v.json) for (const r of rows) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(formatRows(rows));
    } else if (command === 'retry') {
      const n = await dlq.retryDeadLetters(filter, Date.now());
      process.stdout.write(`${n} dead-lettered event(s) marked for retry; a running relay delivers them at its next poll\n`);
    } else {
      const n = await dlq.discardDeadLetters(filter);
      process.stdout.write(`${n} dead-lettered event(s) discarded\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}

/** One row a line, tab-separated: a tab, line break or backslash inside a value (an error text, an id) is escaped as in C (`\t`, `\n`, `\r`, `\\`). */
export function formatRows(rows: readonly DeadLetterRow[]): string {
  if (rows.length === 0) return 'no dead-lettered events\n';
  const lines = rows.map((r) =>
    [r.id, r.sink, `${r.site}/${r.agent}/${r.stream}`, r.epoch, r.seq, r.event_id, r.status, r.attempts, new Date(r.dead_at).toISOString(), r.field ? `${r.field}: ${r.error}` : r.error].map(cell).join('\t'),
  );
  return `${['id', 'sink', 'stream', 'epoch', 'seq', 'event_id', 'status', 'attempts', 'dead_at', 'error'].join('\t')}\n${lines.join('\n')}\n`;
}

function cell(v: unknown): string {
  return String(v).replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!);
}
