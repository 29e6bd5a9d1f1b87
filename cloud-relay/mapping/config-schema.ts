import { z } from 'zod';
import { mappingSchema } from './mapping.js';
import { routesSchema, type RouteConfig } from './routing.js';

/**
 * The relay YAML's `mappings:` and `routes:` (the README's "Routing and canonical events" has a
 * complete example). Spread into the relay config schema; checkRoutingRefs runs in its
 * superRefine, where the other top-level keys (sinks) are known.
 */
const MAPPING_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const routingConfigKeys = {
  /** Name → mapping (mapping.ts): a collector's record → a canonical event. */
  mappings: z
    .record(z.string(), mappingSchema)
    .superRefine((m, ctx) => {
      // Checked here: zod reports a bad record key only as "Invalid key in record".
      for (const name of Object.keys(m)) {
        if (!MAPPING_NAME.test(name)) ctx.addIssue({ code: 'custom', path: [name], message: `mapping name ${JSON.stringify(name)}: letters, digits, _ . - (at most 64)` });
      }
    })
    .default({}),
  /** Which sinks get which events, through which mapping (routing.ts); none: every sink gets every event, unmapped. */
  routes: routesSchema,
};

/**
 * Names a route uses must exist: its mapping under `mappings:`, its sinks among `sinkNames` (when
 * the relay has a `sinks:` list to check against). Issues point at the route's own key.
 */
export function checkRoutingRefs(
  cfg: { mappings: Record<string, unknown>; routes: readonly RouteConfig[] },
  ctx: z.RefinementCtx,
  sinkNames?: ReadonlySet<string>,
): void {
  const mappings = Object.keys(cfg.mappings);
  cfg.routes.forEach((r, i) => {
    if (r.mapping !== undefined && !Object.hasOwn(cfg.mappings, r.mapping)) {
      const known = mappings.length > 0 ? `: defined are ${mappings.join(', ')}` : ' (there is no `mappings:` section)';
      ctx.addIssue({ code: 'custom', path: ['routes', i, 'mapping'], message: `no mapping named ${JSON.stringify(r.mapping)}${known}` });
    }
    if (!sinkNames) return;
    r.sinks.forEach((s, j) => {
      if (!sinkNames.has(s)) {
        const known = sinkNames.size > 0 ? `: defined are ${[...sinkNames].join(', ')}` : ' (there is no `sinks:` section)';
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'sinks', j], message: `no sink named ${JSON.stringify(s)}${known}` });
      }
    });
  });
}
