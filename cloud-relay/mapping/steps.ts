import { z } from 'zod';
import { checkTimeZone } from '../../common/time-zone.js';
import { CAST_TYPES, cast, CastError } from './casts.js';
import { compileDateFormat, DateFormatError } from './date-format.js';
import { deleteAt, formatPath, getAt, parsePath, PathConflict, setAt, type Segment } from './paths.js';
import type { MappableEvent } from './event.js';

/**
 * The operations of a mapping, one `op` each. A mapping works on a copy of the record's data (or the
 * part of it named by `from`), step by step; each step is checked by its schema when the config is
 * loaded and compiled once into a function. At run time a step that cannot do its work throws a
 * FieldFailure naming the field and the reason, and the event is dead-lettered with them.
 */

// ---------------------------------------------------------------------------------------------
// Paths

/** A field of the document being built: `order_number`, `customer.name`, `lines[0].sku`. */
const targetPath = z.string().superRefine((text, ctx) => {
  if (text.startsWith('$')) return void ctx.addIssue({ code: 'custom', message: `${text}: fields starting with "$" are read-only (the record's envelope)` });
  const segs = parsePath(text);
  if (typeof segs === 'string') ctx.addIssue({ code: 'custom', message: `field path ${JSON.stringify(text)} ${segs}` });
});

/** The record's envelope, readable as `$name` in `from`; `$data.<path>` reads the record's data whatever `from` is. */
const META: Record<string, (e: MappableEvent) => unknown> = {
  $site: (e) => e.site,
  $agent: (e) => e.agent,
  $stream: (e) => e.stream,
  $seq: (e) => e.seq,
  $id: (e) => e.id,
  $source: (e) => e.source,
  $key: (e) => e.key ?? undefined,
  $correlation_id: (e) => e.correlation_id ?? undefined,
  $captured_at: (e) => new Date(e.ts).toISOString(),
  $source_at: (e) => (e.source_ts === null || e.source_ts === undefined ? undefined : new Date(e.source_ts).toISOString()),
};

/** A field to read: a target path, or `$site`, `$data.file`, … (see META). */
const sourcePath = z.string().superRefine((text, ctx) => {
  if (!text.startsWith('$')) {
    const segs = parsePath(text);
    if (typeof segs === 'string') ctx.addIssue({ code: 'custom', message: `field path ${JSON.stringify(text)} ${segs}` });
    return;
  }
  if (Object.hasOwn(META, text) || text === '$data') return;
  if (text.startsWith('$data.') || text.startsWith('$data[')) {
    const segs = parsePath(text.slice(text[5] === '.' ? 6 : 5));
    if (typeof segs === 'string') ctx.addIssue({ code: 'custom', message: `field path ${JSON.stringify(text)} ${segs}` });
    return;
  }
  ctx.addIssue({ code: 'custom', message: `unknown record field ${JSON.stringify(text)} (one of ${[...Object.keys(META), '$data.<path>'].join(', ')})` });
});

type Reader = (doc: unknown, e: MappableEvent) => unknown;

function reader(text: string): Reader {
  const meta = META[text];
  if (meta) return (_doc, e) => meta(e);
  if (text === '$data') return (_doc, e) => e.data;
  if (text.startsWith('$data')) {
    const segs = parsePath(text.slice(text[5] === '.' ? 6 : 5)) as Segment[];
    return (_doc, e) => getAt(e.data, segs);
  }
  const segs = parsePath(text) as Segment[];
  return (doc) => getAt(doc, segs);
}

const segmentsOf = (text: string) => parsePath(text) as Segment[];

// ---------------------------------------------------------------------------------------------
// Step schemas

/** A field that is absent, null or empty text: an `error` (default) or left `omit`ted from the result. */
const ifMissing = z.enum(['error', 'omit']).default('error');

const renameStep = z.strictObject({ op: z.literal('rename'), from: sourcePath, to: targetPath, if_missing: ifMissing });
const copyStep = z.strictObject({ op: z.literal('copy'), from: sourcePath, to: targetPath, if_missing: ifMissing });
const dropStep = z.strictObject({ op: z.literal('drop'), fields: z.array(targetPath).min(1, 'list at least one field') });
const constantStep = z.strictObject({ op: z.literal('constant'), to: targetPath, value: z.json() });

const castStep = z
  .strictObject({
    op: z.literal('cast'),
    field: targetPath,
    to: z.enum(CAST_TYPES),
    /** decimal: digits after the point (padded; more is an error, nothing is rounded). */
    scale: z.number().int().min(0).max(18).optional(),
    /** number, integer, decimal: `,` for exports that write 12,50. */
    decimal_separator: z.enum(['.', ',']).default('.'),
    if_missing: ifMissing,
  })
  .refine((s) => s.scale === undefined || s.to === 'decimal', { message: 'scale applies to decimal only', path: ['scale'] });

const zone = z.string().superRefine((tz, ctx) => {
  try {
    checkTimeZone(tz);
  } catch {
    ctx.addIssue({ code: 'custom', message: `unknown IANA time zone ${JSON.stringify(tz)} (e.g. Europe/Paris, America/Chicago, UTC)` });
  }
});

const dateStep = z
  .strictObject({
    op: z.literal('date'),
    field: targetPath,
    /** A pattern (yyyy-MM-dd HH:mm:ss, dd.MM.yyyy, …) or iso, epoch_ms, epoch_s: see date-format.ts. */
    format: z.string().min(1).default('iso'),
    /** The source's IANA zone, for values without an offset. */
    zone: zone.optional(),
    /** Where the ISO 8601 UTC result goes; default: in place. */
    to: targetPath.optional(),
    if_missing: ifMissing,
  })
  .superRefine((s, ctx) => {
    let hasOffset: boolean;
    try {
      hasOffset = compileDateFormat(s.format, s.zone ?? 'UTC').hasOffset; // 'UTC' only to check the pattern itself here
    } catch (err) {
      if (!(err instanceof DateFormatError)) throw err;
      return void ctx.addIssue({ code: 'custom', path: ['format'], message: err.message });
    }
    // `iso` values may or may not carry an offset: one without is an error for that event only.
    if (s.zone === undefined && !hasOffset) {
      ctx.addIssue({ code: 'custom', path: ['zone'], message: `format ${JSON.stringify(s.format)} has no offset (XXX): give the source's zone, e.g. zone: Europe/Paris (or UTC)` });
    }
  });

const lookupStep = z
  .strictObject({
    op: z.literal('lookup'),
    field: targetPath,
    /** Value as text → what to write. */
    table: z.record(z.string(), z.json()).refine((t) => Object.keys(t).length > 0, 'the table is empty'),
    /** Written for a value the table lacks; without it such a value is an error. */
    default: z.json().optional(),
    ignore_case: z.boolean().default(false),
    /** Where the result goes; default: in place. */
    to: targetPath.optional(),
    if_missing: ifMissing,
  })
  .refine((s) => !s.ignore_case || new Set(Object.keys(s.table).map((k) => k.toLowerCase())).size === Object.keys(s.table).length, {
    message: 'with ignore_case two keys of the table are the same',
    path: ['table'],
  });

export const stepSchema = z.discriminatedUnion('op', [renameStep, copyStep, dropStep, constantStep, castStep, dateStep, lookupStep]);
export type Step = z.output<typeof stepSchema>;
export const STEP_OPS = ['rename', 'copy', 'drop', 'constant', 'cast', 'date', 'lookup'] as const;

// ---------------------------------------------------------------------------------------------
// Compiled steps

/** A step could not do its work: the field (as the step names it) and the reason. */
export class FieldFailure extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

export type CompiledStep = (doc: Record<string, unknown>, event: MappableEvent) => void;

const isMissing = (v: unknown) => v === undefined || v === null || (typeof v === 'string' && v.trim() === '');

/** Compiles a validated step (its schema has accepted it, so nothing here can fail on the config). */
export function compileStep(step: Step, index: number): CompiledStep {
  const label = `step ${index + 1} (${step.op})`;
  const fail = (field: string, reason: string): never => {
    throw new FieldFailure(field, `${label}: ${reason}`);
  };
  const write = (doc: Record<string, unknown>, segs: Segment[], value: unknown) => {
    try {
      setAt(doc, segs, value);
    } catch (err) {
      if (err instanceof PathConflict) fail(formatPath(segs), err.message);
      throw err;
    }
  };
  switch (step.op) {
    case 'rename':
    case 'copy': {
      const read = reader(step.from);
      const from = step.from.startsWith('$') ? undefined : segmentsOf(step.from);
      const to = segmentsOf(step.to);
      const move = step.op === 'rename';
      return (doc, e) => {
        const v = read(doc, e);
        if (v === undefined || v === null) {
          if (step.if_missing === 'omit') return;
          fail(step.from, 'is missing');
        }
        if (move && from) deleteAt(doc, from);
        write(doc, to, structuredCloneIfObject(v));
      };
    }
    case 'drop': {
      const fields = step.fields.map(segmentsOf);
      return (doc) => {
        for (const f of fields) deleteAt(doc, f);
      };
    }
    case 'constant': {
      const to = segmentsOf(step.to);
      return (doc) => write(doc, to, structuredCloneIfObject(step.value));
    }
    case 'cast': {
      const field = segmentsOf(step.field);
      const opts = { decimalSeparator: step.decimal_separator, scale: step.scale };
      return (doc) => {
        const v = getAt(doc, field);
        if (isMissing(v)) return missing(doc, field, step.if_missing, step.field, fail);
        try {
          write(doc, field, cast(v, step.to, opts));
        } catch (err) {
          if (err instanceof CastError) fail(step.field, `cannot cast to ${step.to}: ${err.message}`);
          throw err;
        }
      };
    }
    case 'date': {
      const field = segmentsOf(step.field);
      const to = step.to === undefined ? field : segmentsOf(step.to);
      const parse = compileDateFormat(step.format, step.zone);
      return (doc) => {
        const v = getAt(doc, field);
        if (isMissing(v)) return missing(doc, field, step.if_missing, step.field, fail);
        if (typeof v !== 'string' && typeof v !== 'number') fail(step.field, `${Array.isArray(v) ? 'a list' : typeof v} is not a date`);
        try {
          write(doc, to, parse(String(v)));
        } catch (err) {
          if (err instanceof DateFormatError) fail(step.field, err.message);
          throw err;
        }
      };
    }
    case 'lookup': {
      const field = segmentsOf(step.field);
      const to = step.to === undefined ? field : segmentsOf(step.to);
      const table = new Map(Object.entries(step.table).map(([k, v]) => [step.ignore_case ? k.toLowerCase() : k, v]));
      const hasDefault = step.default !== undefined;
      return (doc) => {
        const v = getAt(doc, field);
        if (isMissing(v)) return missing(doc, field, step.if_missing, step.field, fail);
        if (typeof v === 'object') fail(step.field, 'is not a plain value, so it cannot be looked up');
        const key = step.ignore_case ? String(v).toLowerCase() : String(v);
        if (table.has(key)) return write(doc, to, structuredCloneIfObject(table.get(key)));
        if (!hasDefault) fail(step.field, `${JSON.stringify(v)} is not in the lookup table (and the step has no default)`);
        write(doc, to, structuredCloneIfObject(step.default));
      };
    }
  }
}

/** An absent, null or empty field: removed from the result (`omit`), or the event fails. */
function missing(doc: Record<string, unknown>, field: Segment[], ifMissing: 'error' | 'omit', name: string, fail: (f: string, r: string) => never): void {
  if (ifMissing === 'error') fail(name, 'is missing or empty');
  deleteAt(doc, field);
}

/** A step's YAML value (constant, lookup result) must not be shared between events' documents. */
function structuredCloneIfObject<T>(v: T): T {
  return v !== null && typeof v === 'object' ? structuredClone(v) : v;
}
