import { pino, type Logger, type DestinationStream } from 'pino';
import { prettyDestination } from './log-pretty.js';
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
  /** Default: JSON to a given destination; to stdout, as `logFormat()` decides. */
  format?: LogFormat;
  /**
   * Secret values of the loaded config (`secretValues(cfg)`): replaced in every line written, the
   * third line of defence (a driver's message that quotes one, a URL with credentials).
   */
  secrets?: readonly string[];
}

export type LogFormat = 'json' | 'pretty';

let warnedFormat = false;

/**
 * How logs are written to stdout: `ERP_EDGE_LOG_FORMAT=json|pretty` forces one; otherwise readable
 * lines on a terminal and JSON lines when stdout is a pipe, a file or a service manager's journal
 * (systemd, nssm), where a machine reads them.
 */
export function logFormat(env: NodeJS.ProcessEnv = process.env, isTTY = process.stdout.isTTY === true): LogFormat {
  const forced = env.ERP_EDGE_LOG_FORMAT?.trim().toLowerCase();
  if (forced === 'json' || forced === 'pretty') return forced;
  if (forced && !warnedFormat) {
    warnedFormat = true;
    process.stderr.write(`ERP_EDGE_LOG_FORMAT=${JSON.stringify(env.ERP_EDGE_LOG_FORMAT)} is neither json nor pretty: ignored\n`);
  }
  return isTTY ? 'pretty' : 'json';
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
  const format = opts.format ?? (opts.destination ? 'json' : logFormat());
  if (format === 'pretty') {
    const out = opts.destination ?? process.stdout;
    const color = !opts.destination && process.stdout.isTTY === true && !process.env.NO_COLOR;
    return pino(options, prettyDestination(out, { color }));
  }
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
