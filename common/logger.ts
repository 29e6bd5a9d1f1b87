import { pino, type Logger, type DestinationStream } from 'pino';
import { REDACTED, SECRET_KEYS, scrubber } from './secrets.js';

export type { Logger };

/**
 * Keys whose values are never logged, wherever they appear in a logged object (common/secrets.ts
 * lists them). Config objects are never logged whole, but this is the second line of defence.
 */
const redactPaths = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export interface LoggerOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
  /**
   * Secret values of the loaded config (`secretValues(cfg)`): replaced in every line written, the
   * third line of defence (a driver's message that quotes one, a URL with credentials).
   */
  secrets?: readonly string[];
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.LOG_LEVEL ?? 'info';
  const options = {
    level,
    name: opts.name,
    base: { pid: process.pid },
    redact: { paths: redactPaths, censor: REDACTED },
    // Always on: a URL with credentials in any message loses its password even with no secrets given.
    hooks: { streamWrite: scrubber(opts.secrets ?? []) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** A URL fit for a log line: credentials and query string (tokens ride there, e.g. SigV4) removed. */
export function safeUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.username || u.password) {
      u.username = u.username ? '[redacted]' : '';
      u.password = '';
    }
    if (u.search) u.search = '?[redacted]';
    return u.toString();
  } catch {
    return '[unparseable url]';
  }
}
