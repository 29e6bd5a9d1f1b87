import { openSqlite, type SqliteDb } from './sqlite.js';
import { chunkProblem, splitChunk } from './chunk.js';
import { SCHEMA_VERSION } from './migrations.js';
import { fullLineProblem } from './outbox.js';

/**
 * `edge-agent outbox verify`: reads an outbox file (read-only; the agent may be running) and
 * checks what the agent relies on — SQLite's own integrity check, each stream's seqs (every
 * pending seq from the acked one + 1 to the last is a stored record or an accounted skip, stored
 * rows readable and in order), checkpoints (readable, of configured collectors) and the
 * dead-letter table. Problems fail the check (exit 1); warnings are reported only.
 */
export interface VerifyCheck {
  name: string;
  problems: string[];
  warnings: string[];
}

export interface VerifyReport {
  path: string;
  ok: boolean;
  checks: VerifyCheck[];
}

export interface VerifyOptions {
  /** Collector names of the config: checkpoints of others are dangling (a warning). */
  collectors?: readonly string[];
  /** Problems listed per check at most (the count is always given). */
  maxListed?: number;
}

interface ChunkRow {
  gid: number;
  stream: string;
  first_seq: number;
  last_seq: number;
  bytes: number;
  payload: unknown;
}

interface StreamRow {
  stream: string;
  next_seq: number;
  acked_seq: number;
  dropped_upto: number;
}

const ORIGINS = new Set(['relay', 'capture', 'repair']);

export function verifyOutbox(path: string, opts: VerifyOptions = {}): VerifyReport {
  const max = opts.maxListed ?? 20;
  const db = openSqlite(path, { readonly: true, fileMustExist: true });
  const checks: VerifyCheck[] = [];
  const check = (name: string) => {
    const c: VerifyCheck = { name, problems: [], warnings: [] };
    checks.push(c);
    let more = 0;
    return {
      problem(m: string) {
        if (c.problems.length < max) c.problems.push(m);
        else c.problems[max] = `… and ${++more} more`;
      },
      warn(m: string) {
        if (c.warnings.length < max) c.warnings.push(m);
      },
    };
  };
  try {
    // 1. SQLite's own view of the file: pages, b-trees, indexes.
    const integrity = check('sqlite integrity');
    let readable = true;
    try {
      const rows = db.pragma('integrity_check(100)') as { integrity_check: string }[];
      for (const r of rows) if (r.integrity_check !== 'ok') integrity.problem(r.integrity_check);
    } catch (err) {
      readable = false;
      integrity.problem(`integrity check could not run: ${(err as Error).message}`);
    }
    if (!readable) return done(path, checks);

    const schema = check('schema');
    const version = db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) schema.problem(`schema version ${version} is newer than this agent's ${SCHEMA_VERSION}`);
    else if (version < SCHEMA_VERSION) schema.warn(`schema version ${version}: migrated to ${SCHEMA_VERSION} when the agent next opens it`);
    const tables = new Set((db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name));
    for (const t of ['meta', 'streams', 'chunks', 'checkpoints']) if (!tables.has(t)) schema.problem(`table ${t} is missing`);
    if (['meta', 'streams', 'chunks', 'checkpoints'].some((t) => !tables.has(t))) return done(path, checks);
    const epoch = db.prepare("SELECT value FROM meta WHERE key = 'epoch'").get() as { value: unknown } | undefined;
    if (!epoch || typeof epoch.value !== 'string' || epoch.value.length < 8) schema.problem('meta has no epoch');

    // 2. Seqs per stream.
    const seqs = check('seq contiguity');
    const streams = db.prepare('SELECT stream, next_seq, acked_seq, dropped_upto FROM streams ORDER BY stream').all() as StreamRow[];
    const known = new Set(streams.map((s) => s.stream));
    for (const r of db.prepare('SELECT DISTINCT stream FROM chunks').all() as { stream: string }[]) {
      if (!known.has(r.stream)) seqs.problem(`${r.stream}: chunk rows of a stream the streams table does not know`);
    }
    const chunks = db.prepare<[string], ChunkRow>('SELECT gid, stream, first_seq, last_seq, bytes, payload FROM chunks WHERE stream = ? ORDER BY first_seq');
    const skipsOf = tables.has('skips')
      ? db.prepare<[string], { first_seq: number; last_seq: number; reason: string }>('SELECT first_seq, last_seq, reason FROM skips WHERE stream = ? ORDER BY first_seq')
      : undefined;
    for (const s of streams) {
      const last = s.next_seq - 1;
      if (s.acked_seq > last) seqs.problem(`${s.stream}: acked up to ${s.acked_seq}, beyond its last seq ${last}`);
      const covered: { from: number; to: number; what: string }[] = [];
      if (s.dropped_upto > 0) covered.push({ from: 1, to: s.dropped_upto, what: 'dropped' });
      let prev: ChunkRow | undefined;
      for (const c of chunks.iterate(s.stream)) {
        const where = `${s.stream} chunk ${c.first_seq}..${c.last_seq}`;
        const whole = chunkProblem(c.payload, c.first_seq, c.last_seq);
        if (whole) seqs.problem(`${where}: ${whole} (outbox repair quarantines it)`);
        else {
          const lines = splitChunk(c.payload as string);
          let bytes = 0;
          lines.forEach((l, i) => {
            bytes += Buffer.byteLength(l);
            const p = fullLineProblem(l, c.first_seq + i);
            if (p) seqs.problem(`${s.stream} seq ${c.first_seq + i}: ${p} (outbox repair quarantines it)`);
          });
          if (bytes !== c.bytes) seqs.problem(`${where}: size column says ${c.bytes} bytes, its records take ${bytes}`);
        }
        if (prev && c.first_seq <= prev.last_seq) seqs.problem(`${where} overlaps chunk ${prev.first_seq}..${prev.last_seq}`);
        if (c.last_seq > last) seqs.problem(`${where} is beyond the stream's last seq ${last}`);
        covered.push({ from: c.first_seq, to: c.last_seq, what: 'record' });
        prev = c;
      }
      for (const k of skipsOf?.all(s.stream) ?? []) {
        if (k.last_seq > last) seqs.problem(`${s.stream}: skipped range ${k.first_seq}..${k.last_seq} (${k.reason}) is beyond the last seq ${last}`);
        covered.push({ from: k.first_seq, to: k.last_seq, what: `skipped (${k.reason})` });
      }
      // Every pending seq exactly once: a record, a skipped range or dropped.
      covered.sort((a, b) => a.from - b.from || a.to - b.to);
      let next = s.acked_seq + 1;
      for (const r of covered) {
        if (r.to < next) {
          if (r.to > s.acked_seq && r.what !== 'dropped') seqs.problem(`${s.stream}: seqs ${r.from}..${r.to} (${r.what}) are accounted for twice`);
          continue;
        }
        if (r.from > next) seqs.problem(`${s.stream}: pending seqs ${next}..${r.from - 1} are neither stored nor skipped`);
        else if (r.from < next && r.from > s.acked_seq && r.what !== 'dropped') seqs.problem(`${s.stream}: seqs ${r.from}..${next - 1} (${r.what}) are accounted for twice`);
        next = r.to + 1;
      }
      if (next <= last) seqs.problem(`${s.stream}: pending seqs ${next}..${last} are neither stored nor skipped`);
    }

    // 3. Checkpoints: readable, and of collectors the config has.
    const cps = check('checkpoints');
    const configured = opts.collectors ? new Set(opts.collectors) : undefined;
    const dangling = new Map<string, number>();
    for (const r of db.prepare('SELECT collector, key, value FROM checkpoints ORDER BY collector, key').all() as { collector: string; key: string; value: unknown }[]) {
      try {
        JSON.parse(String(r.value));
        if (typeof r.value !== 'string') throw new Error('not text');
      } catch {
        cps.problem(`${r.collector} / ${r.key}: value is not JSON (outbox repair removes it; the collector starts over there)`);
      }
      if (configured && !configured.has(r.collector)) dangling.set(r.collector, (dangling.get(r.collector) ?? 0) + 1);
    }
    if (configured && tables.has('key_versions')) {
      for (const r of db.prepare('SELECT collector, count(*) AS n FROM key_versions GROUP BY collector').all() as { collector: string; n: number }[]) {
        if (!configured.has(r.collector)) dangling.set(r.collector, (dangling.get(r.collector) ?? 0) + r.n);
      }
    }
    for (const [collector, n] of dangling) cps.warn(`${n} checkpoint row(s) of collector "${collector}", which the config does not have (removed or renamed?)`);

    // 4. The dead-letter table.
    const dl = check('dead letters');
    if (tables.has('dead_letters')) {
      const rows = db.prepare('SELECT id, stream, seq, origin, reason, bytes, payload FROM dead_letters ORDER BY id').iterate() as IterableIterator<{
        id: number;
        stream: unknown;
        seq: unknown;
        origin: unknown;
        reason: unknown;
        bytes: unknown;
        payload: unknown;
      }>;
      for (const r of rows) {
        if (typeof r.stream !== 'string' || r.stream === '') dl.problem(`dead letter ${r.id}: no stream`);
        if (typeof r.origin !== 'string' || !ORIGINS.has(r.origin)) dl.warn(`dead letter ${r.id}: origin ${String(r.origin)} is not one this agent knows`);
        if ((r.origin === 'relay' || r.origin === 'repair') && typeof r.seq !== 'number') dl.problem(`dead letter ${r.id}: origin ${r.origin} without its seq`);
        if (typeof r.reason !== 'string' || r.reason === '') dl.problem(`dead letter ${r.id}: no reason`);
        if (typeof r.payload !== 'string') dl.problem(`dead letter ${r.id}: payload is not text`);
        else if (r.bytes !== Buffer.byteLength(r.payload)) dl.problem(`dead letter ${r.id}: size column says ${String(r.bytes)} bytes, payload takes ${Buffer.byteLength(r.payload)}`);
      }
    }
    return done(path, checks);
  } finally {
    db.close();
  }
}

function done(path: string, checks: VerifyCheck[]): VerifyReport {
  return { path, ok: checks.every((c) => c.problems.length === 0), checks };
}

/** The report as the CLI prints it: one line per check, its problems and warnings under it. */
export function formatVerify(r: VerifyReport): string {
  const out = [`outbox ${r.path}`];
  for (const c of r.checks) {
    out.push(`${c.problems.length ? 'FAIL' : 'ok  '}  ${c.name}${c.problems.length ? ` (${c.problems.length} problem(s))` : ''}`);
    for (const p of c.problems) out.push(`        ${p}`);
    for (const w of c.warnings) out.push(`  warn  ${w}`);
  }
  out.push(r.ok ? 'outbox verify: ok' : 'outbox verify: FAILED (edge-agent outbox repair, with the agent stopped, quarantines unreadable rows)');
  return `${out.join('\n')}\n`;
}
