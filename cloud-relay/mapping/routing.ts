import picomatch from 'picomatch';
import { z } from 'zod';
import type { MappableEvent } from './event.js';
import { getAt, parsePath, type Segment } from './paths.js';

/**
 * Routing rules: which sinks get an event, and which mapping turns it into what they receive.
 * A route matches on site, agent and stream (globs: `wh-*`, `[orders, returns]`) and on fields of
 * the record (`where:`); all of its conditions must hold. Every route that matches adds its sinks;
 * a sink two matching routes name keeps the first one's mapping (routes are read top to bottom).
 * `route(event)` is pure: the same event always gets the same answer, on any relay instance.
 */

type Scalar = string | number | boolean | null;

/** One glob or a list of them; a name matches if any does. */
const globs = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).transform((g) => (Array.isArray(g) ? g : [g]));

/**
 * `payload.<path>: value` (equals), `{in: [a, b]}`, `{exists: true|false}`. Values compare as text
 * when their types differ (a CSV's "12" equals 12 in the YAML).
 */
type Condition = Scalar | { equals: Scalar } | { in: Scalar[] } | { exists: boolean };

const isScalar = (v: unknown): v is Scalar => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** Why a condition is not one, or undefined (checked by hand: a zod union would only say "Invalid input"). */
function conditionProblem(c: unknown): string | undefined {
  if (isScalar(c)) return undefined;
  const forms = 'write a value (equals), { in: [a, b] } or { exists: true|false }';
  if (typeof c !== 'object' || Array.isArray(c)) return `a list is not a condition: ${forms}`;
  const keys = Object.keys(c);
  if (keys.length !== 1 || !['equals', 'in', 'exists'].includes(keys[0]!)) return `give exactly one of equals, in, exists: ${forms}`;
  const v = (c as Record<string, unknown>)[keys[0]!];
  if (keys[0] === 'equals' && !isScalar(v)) return 'equals takes a plain value (text, number, true/false, null)';
  if (keys[0] === 'in' && (!Array.isArray(v) || v.length === 0 || !v.every(isScalar))) return 'in takes a non-empty list of plain values';
  if (keys[0] === 'exists' && typeof v !== 'boolean') return 'exists takes true or false';
  return undefined;
}

const condition = z.unknown().transform((c, ctx) => {
  const problem = conditionProblem(c);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
  return c as Condition;
});

/** Fields a condition may test: the record's data (`payload.…`), or its envelope. */
const ENVELOPE_FIELDS = ['source', 'key', 'correlation_id'] as const;

/** Why a `where:` key cannot be tested, or undefined when it can. */
function whereKeyProblem(k: string): string | undefined {
  if ((ENVELOPE_FIELDS as readonly string[]).includes(k)) return undefined;
  if (!k.startsWith('payload.') && !k.startsWith('payload[')) return `${JSON.stringify(k)}: test payload.<field> (the record's data) or one of ${ENVELOPE_FIELDS.join(', ')}`;
  const segs = parsePath(k.slice(k[7] === '.' ? 8 : 7));
  return typeof segs === 'string' ? `field path ${JSON.stringify(k)} ${segs}` : undefined;
}

// Keys checked here rather than by a key schema: zod reports a bad record key only as "Invalid key in record".
const where = z.record(z.string(), condition).superRefine((w, ctx) => {
  for (const k of Object.keys(w)) {
    const problem = whereKeyProblem(k);
    if (problem) ctx.addIssue({ code: 'custom', path: [k], message: problem });
  }
});

export const routeSchema = z.strictObject({
  /** For logs and errors; default `route <n>`. */
  name: z.string().min(1).optional(),
  site: globs.optional(),
  agent: globs.optional(),
  stream: globs.optional(),
  where: where.optional(),
  /** Sinks (names under `sinks:`) that get the events this route matches. */
  sinks: z
    .array(z.string().min(1))
    .min(1, 'list at least one sink')
    .refine((s) => new Set(s).size === s.length, 'list each sink once'),
  /** A mapping (name under `mappings:`) applied for these sinks; without one they get the event as stored. */
  mapping: z.string().min(1).optional(),
});

export const routesSchema = z.array(routeSchema).default([]);
export type RouteConfig = z.output<typeof routeSchema>;

/** A sink an event goes to, the mapping for it (if any), and the route that chose it. */
export interface RouteTarget {
  sink: string;
  mapping: string | undefined;
  route: string;
}

export type Router = (event: MappableEvent) => RouteTarget[];

/** Compiles validated routes into route(event); globs and paths are parsed once here. */
export function compileRoutes(routes: readonly RouteConfig[]): Router {
  const compiled = routes.map((r, i) => ({ name: r.name ?? `route ${i + 1}`, test: routeTest(r), sinks: r.sinks, mapping: r.mapping }));
  return (event) => {
    const out: RouteTarget[] = [];
    const taken = new Set<string>();
    for (const r of compiled) {
      if (!r.test(event)) continue;
      for (const sink of r.sinks) {
        if (taken.has(sink)) continue;
        taken.add(sink);
        out.push({ sink, mapping: r.mapping, route: r.name });
      }
    }
    return out;
  };
}

function routeTest(r: RouteConfig): (e: MappableEvent) => boolean {
  const tests: Array<(e: MappableEvent) => boolean> = [];
  const glob = (patterns: string[]) => picomatch(patterns, { dot: true });
  if (r.site) {
    const m = glob(r.site);
    tests.push((e) => m(e.site));
  }
  if (r.agent) {
    const m = glob(r.agent);
    tests.push((e) => m(e.agent));
  }
  if (r.stream) {
    const m = glob(r.stream);
    tests.push((e) => m(e.stream));
  }
  for (const [key, cond] of Object.entries(r.where ?? {})) tests.push(conditionTest(key, cond));
  return (e) => tests.every((t) => t(e));
}

function conditionTest(key: string, cond: Condition): (e: MappableEvent) => boolean {
  const read = fieldReader(key);
  if (isScalar(cond)) return (e) => same(read(e), cond);
  if ('exists' in cond) {
    const want = cond.exists;
    return (e) => {
      const v = read(e);
      return (v !== undefined && v !== null) === want;
    };
  }
  if ('in' in cond) {
    const set = cond.in;
    return (e) => {
      const v = read(e);
      return set.some((x) => same(v, x));
    };
  }
  const want = cond.equals;
  return (e) => same(read(e), want);
}

function fieldReader(key: string): (e: MappableEvent) => unknown {
  if (key === 'source') return (e) => e.source;
  if (key === 'key') return (e) => e.key ?? undefined;
  if (key === 'correlation_id') return (e) => e.correlation_id ?? undefined;
  const segs = parsePath(key.slice(key[7] === '.' ? 8 : 7)) as Segment[];
  return (e) => getAt(e.data, segs);
}

/** Equal, or the same text when one side is a number or boolean and the other its text (CSV values are text). */
function same(value: unknown, want: Scalar): boolean {
  if (want === null) return value === null || value === undefined;
  if (value === want) return true;
  const plain = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
  return plain && typeof value !== typeof want && String(value) === String(want);
}
