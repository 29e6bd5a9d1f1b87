import type { Logger } from '../../common/logger.js';
import { identityTransform, type SinkEvent, type SinkHooks, type SinkHooksFor } from '../sinks/sink.js';
import { compileMapping, type CompiledMapping, type MappingConfig } from './mapping.js';
import { compileRoutes, type RouteConfig, type RouteTarget } from './routing.js';

export interface RoutingConfig {
  mappings: Record<string, MappingConfig>;
  routes: readonly RouteConfig[];
}

/**
 * Routing and mapping as the sinks' hooks (sinks/sink.ts): a sink some route names gets the events
 * those routes match (`match`), each turned into what the route's mapping makes of it, or passed
 * as stored when the route has none (`transform`); a mapping failure is the transform's
 * `{ok: false, field, reason}`, which the delivery loop dead-letters. A sink no route names keeps
 * the sinks' defaults (every event, as stored). Without routes: undefined, the defaults everywhere.
 * Routes and mappings are compiled once, here, at relay start.
 */
export function routingHooks(cfg: RoutingConfig, log?: Logger): SinkHooksFor | undefined {
  if (cfg.routes.length === 0) return undefined;
  const route = compileRoutes(cfg.routes);
  const mappings = new Map<string, CompiledMapping>(Object.entries(cfg.mappings).map(([name, def]) => [name, compileMapping(name, def)]));
  const routed = new Set(cfg.routes.flatMap((r) => r.sinks));
  // match and transform of one sink see the same event object one after the other: route it once.
  const seen = new WeakMap<SinkEvent, RouteTarget[]>();
  const targets = (e: SinkEvent): RouteTarget[] => {
    let t = seen.get(e);
    if (!t) seen.set(e, (t = route(e)));
    return t;
  };
  return (sink) => {
    if (!routed.has(sink.name)) {
      log?.info({ sink: sink.name }, 'sink named by no route: it gets every event, as stored');
      return {};
    }
    const hooks: SinkHooks = {
      match: (e) => targets(e).some((t) => t.sink === sink.name),
      transform: (e) => {
        const target = targets(e).find((t) => t.sink === sink.name);
        const map = target?.mapping === undefined ? undefined : mappings.get(target.mapping);
        return map ? map(e) : identityTransform(e);
      },
    };
    return hooks;
  };
}
