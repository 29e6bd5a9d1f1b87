import { inspect } from 'node:util';

/**
 * Log lines for a person at a terminal: `13:45:01.123 INFO  edge-agent: agent started site=s1 …`.
 * pino writes JSON (what a service's journal, a pipe or a log shipper gets); this turns each JSON
 * line back into one readable line, in the process, with no worker thread and no dependency (so the
 * single executables carry it too). Redaction has already happened: pino redacts before it writes.
 */

const LEVELS: Record<number, { label: string; color: number }> = {
  10: { label: 'TRACE', color: 90 },
  20: { label: 'DEBUG', color: 36 },
  30: { label: 'INFO ', color: 32 },
  40: { label: 'WARN ', color: 33 },
  50: { label: 'ERROR', color: 31 },
  60: { label: 'FATAL', color: 35 },
};

/** Fields shown in the line's head, or not at all. */
const HEAD = new Set(['level', 'time', 'pid', 'hostname', 'name', 'component', 'part', 'msg', 'v']);

export interface PrettyOptions {
  /** ANSI colours for the level. */
  color: boolean;
}

/** One pino JSON line → one readable line (plus an error's stack, indented). Not JSON: returned as is. */
export function prettyLine(json: string, o: PrettyOptions): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const lvl = LEVELS[rec.level as number] ?? { label: String(rec.level).toUpperCase().padEnd(5), color: 0 };
  const level = o.color && lvl.color ? `\x1b[${lvl.color}m${lvl.label}\x1b[0m` : lvl.label;
  const who = [rec.name, rec.component, rec.part].filter((x) => typeof x === 'string' && x).join('/');
  const parts = [clock(rec.time), level, who ? `${who}:` : '', typeof rec.msg === 'string' ? rec.msg : ''].filter(Boolean);
  let stack = '';
  for (const [k, v] of Object.entries(rec)) {
    if (HEAD.has(k) || v === undefined) continue;
    if ((k === 'err' || k === 'error') && v && typeof v === 'object') {
      const e = v as { message?: unknown; stack?: unknown };
      const rest = Object.fromEntries(Object.entries(e).filter(([x]) => x !== 'stack' && x !== 'type'));
      parts.push(`${k}=${Object.keys(rest).length === 1 && typeof e.message === 'string' ? quote(e.message) : value(rest)}`);
      if (typeof e.stack === 'string') stack = `${e.stack.replace(/^/gm, '    ')}\n`;
      continue;
    }
    parts.push(`${k}=${value(v)}`);
  }
  return `${parts.join(' ')}\n${stack}`;
}

function clock(time: unknown): string {
  if (typeof time !== 'number') return '--:--:--.---';
  const d = new Date(time);
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function value(v: unknown): string {
  if (typeof v === 'string') return quote(v);
  if (v === null || typeof v !== 'object') return String(v);
  return JSON.stringify(v) ?? inspect(v);
}

/** Bare when it reads unambiguously (no space, quote or `=`), JSON-quoted otherwise. */
function quote(s: string): string {
  return s !== '' && !/[\s"'=\\]/.test(s) ? s : JSON.stringify(s);
}

/** A pino destination that writes pretty lines to `out` (a terminal: its writes are synchronous). */
export function prettyDestination(out: { write(chunk: string): unknown }, o: PrettyOptions): { write(chunk: string): void } {
  return {
    write(chunk: string): void {
      // pino writes one line per call; split anyway, a chunk may hold several.
      let text = '';
      for (const line of chunk.split('\n')) if (line) text += prettyLine(line, o);
      out.write(text);
    },
  };
}
