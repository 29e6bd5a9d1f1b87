import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

/**
 * Keys whose values are never logged, wherever they appear in a logged object.
 * Config objects are never logged whole, but this is the second line of defence.
 */
const SECRET_KEYS = ['password', 'passwd', 'secret', 'token', 'api_key', 'apiKey', 'authorization', 'connection_string'];

const redactPaths = SECRET_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]);

export interface LoggerOptions {
  level?: string;
  name?: string;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.LOG_LEVEL ?? 'info';
  const options = {
    level,
    name: opts.name,
    base: { pid: process.pid },
    redact: { paths: redactPaths, censor: '[redacted]' },
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
