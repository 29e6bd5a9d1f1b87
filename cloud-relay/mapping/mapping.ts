import { z } from 'zod';
import { ErpEdgeError } from '../../common/errors.js';
import { CANONICAL, canonicalSchema, describeCatalog } from './canonical/catalog.js';
import type { CanonicalEnvelope } from './canonical/envelope.js';
import type { MappableEvent } from './event.js';
import { eventKey } from '../sinks/event-key.js';
import { formatPath, getAt, parsePath, type Segment } from './paths.js';
import { compileStep, FieldFailure, stepSchema } from './steps.js';

/**
 * A mapping: YAML that turns a collector's record into a canonical event (canonical/), compiled
 * once into a function. The steps work on a copy of the record's data (or of the part `from`
 * names); the result must be a valid `type` at `version`, or the event fails with the field and
 * the reason (and a sink dead-letters it).
 */
export const mappingSchema = z
  .strictObject({
    /** The canonical event type written (order, inventory_movement, shipment). */
    type: z.string().min(1),
    /** Its version: named, never implied, so an upgrade cannot change what a receiver gets. */
    version: z.number().int().positive(),
    /** The part of the record's data the steps start from, e.g. `fields` (a file-drop row's columns); default: all of it. */
    from: z
      .string()
      .superRefine((text, ctx) => {
        const segs = parsePath(text);
        if (typeof segs === 'string') ctx.addIssue({ code: 'custom', message: `field path ${JSON.stringify(text)} ${segs}` });
      })
      .optional(),
    steps: z.array(stepSchema).min(1, 'list at least one step'),
    /**
     * Top-level fields the steps leave that the canonical type does not have: `error` (catches a
     * misspelt rename) or `drop` them (an export with many columns, a few of them mapped).
     */
    unmapped: z.enum(['error', 'drop']).default('error'),
  })
  .superRefine((m, ctx) => {
    if (canonicalSchema(m.type, m.version) === undefined) {
      const known = Object.hasOwn(CANONICAL, m.type);
      ctx.addIssue({
        code: 'custom',
        path: [known ? 'version' : 'type'],
        message: known ? `${m.type} has no version ${m.version} (known: ${describeCatalog()})` : `unknown canonical type ${JSON.stringify(m.type)} (known: ${describeCatalog()})`,
      });
    }
  });

export type MappingConfig = z.output<typeof mappingSchema>;

/** A mapping's answer: the canonical event, or the field at fault and why (the shape of a sink's transform). */
export type MappingResult = { ok: true; value: CanonicalEnvelope } | { ok: false; field: string; reason: string; code: 'ERP_MAPPING_FAILED' };

export type CompiledMapping = (event: MappableEvent) => MappingResult;

/** Compiles a validated mapping (mappingSchema has accepted it). Never throws for an event: a failure is a result. */
export function compileMapping(name: string, def: MappingConfig): CompiledMapping {
  const schema = canonicalSchema(def.type, def.version);
  if (!schema) throw new ErpEdgeError('ERP_CONFIG_INVALID', `mapping ${name}: unknown canonical type ${def.type} v${def.version}`, { mapping: name });
  const steps = def.steps.map((s, i) => compileStep(s, i));
  const from = def.from === undefined ? undefined : (parsePath(def.from) as Segment[]);
  const known = def.unmapped === 'drop' ? topLevelKeys(schema) : undefined;
  const label = `${def.type} v${def.version}`;
  const failure = (field: string, reason: string): MappingResult => ({ ok: false, field, reason: `mapping ${name}: ${reason}`, code: 'ERP_MAPPING_FAILED' });

  return (event) => {
    const start = from ? getAt(event.data, from) : event.data;
    if (start === null || typeof start !== 'object' || Array.isArray(start)) {
      return failure(def.from ?? '(data)', `the record's ${def.from === undefined ? 'data' : def.from} is ${start === undefined ? 'missing' : 'not an object'}`);
    }
    // A copy: the stored event may be handed to other sinks' transforms after this one.
    const doc = structuredClone(start) as Record<string, unknown>;
    try {
      for (const step of steps) step(doc, event);
    } catch (err) {
      if (err instanceof FieldFailure) return failure(err.field, err.reason);
      throw err;
    }
    if (known) for (const k of Object.keys(doc)) if (!known.has(k)) delete doc[k];
    const checked = schema.safeParse(doc, { reportInput: true });
    if (!checked.success) return schemaFailure(checked.error.issues, label, failure);
    return { ok: true, value: envelope(def, event, checked.data) };
  };
}

function envelope(def: MappingConfig, e: MappableEvent, data: unknown): CanonicalEnvelope {
  return {
    type: def.type,
    version: def.version,
    idempotency_key: eventKey(e, e.id),
    // Carried from the collector; a record without one is its own correlation.
    correlation_id: e.correlation_id ?? e.id,
    origin: {
      site: e.site,
      agent: e.agent,
      stream: e.stream,
      seq: e.seq,
      source: e.source,
      captured_at: new Date(e.ts).toISOString(),
      ...(e.source_ts === null || e.source_ts === undefined ? {} : { source_at: new Date(e.source_ts).toISOString() }),
    },
    data,
  };
}

/** The first problem the canonical schema found, as field and reason (the count of any others after it). */
function schemaFailure(issues: readonly z.core.$ZodIssue[], label: string, failure: (f: string, r: string) => MappingResult): MappingResult {
  const first = issues[0]!;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  const at = first.path as Segment[];
  if (first.code === 'unrecognized_keys') {
    const field = formatPath([...at, first.keys[0]!]);
    return failure(field, `is not a field of ${label}: rename it to one, drop it, or set unmapped: drop${more}`);
  }
  const field = at.length === 0 ? '(data)' : formatPath(at);
  if (first.code === 'invalid_type' && first.input === undefined) return failure(field, `is required by ${label}${more}`);
  return failure(field, `${first.message} (${label})${more}`);
}

function topLevelKeys(schema: z.ZodType): Set<string> {
  const shape = (schema as unknown as { shape?: Record<string, unknown> }).shape;
  return new Set(shape ? Object.keys(shape) : []);
}

/** For callers that throw rather than answer: the failure as a typed error naming field and reason. */
export function mappingError(result: Extract<MappingResult, { ok: false }>): ErpEdgeError {
  return new ErpEdgeError('ERP_MAPPING_FAILED', `${result.field}: ${result.reason}`, { field: result.field, reason: result.reason });
}
