import type { StoredEvent } from '../store/store.js';

/**
 * What routing and mapping read of an event: a stored record and the stream it came from. The
 * sinks' SinkEvent (sinks/sink.ts) is one, so a route or a mapping plugs in as a sink's hooks.
 */
export type MappableEvent = Pick<StoredEvent, 'seq' | 'id' | 'ts' | 'source' | 'correlation_id' | 'data'> &
  Partial<Pick<StoredEvent, 'source_ts' | 'key'>> & {
    site: string;
    agent: string;
    stream: string;
  };
