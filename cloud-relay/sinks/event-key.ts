import type { StreamRef } from './sink.js';

/**
 * An event's key downstream: `<site>/<agent>/<stream>/<id>`. Record ids are unique within their
 * stream only (two sites' exports can both carry `orders.csv#41`), and a receiver that honours an
 * idempotency key alone would drop the second site's event as a repeat. Site, agent and stream are
 * MQTT topic levels (letters, digits, `_ . -`, never `/`), so the first three segments are always
 * them and the rest is the id, whatever it holds. The epoch is left out on purpose: an outbox
 * renumbered after a restore (#12) keeps its ids, and a receiver then sees the same keys again.
 */
export function eventKey(stream: Omit<StreamRef, 'epoch'>, id: string): string {
  return `${streamPrefix(stream)}${id}`;
}

/** `<site>/<agent>/<stream>/<first id>..<last id>`: the key of a batch of several events. */
export function batchKey(stream: Omit<StreamRef, 'epoch'>, firstId: string, lastId: string): string {
  return `${streamPrefix(stream)}${firstId}..${lastId}`;
}

function streamPrefix(s: Omit<StreamRef, 'epoch'>): string {
  return `${s.site}/${s.agent}/${s.stream}/`;
}
