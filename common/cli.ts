import { parseArgs } from 'node:util';
import { isErpEdgeError } from './errors.js';
import type { Logger } from './logger.js';

/** Parses `<command> --config FILE`; exits with usage on anything else. */
export function parseCommand(argv: string[], commands: readonly string[], usage: string): { command: string; config: string } {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    fail(`${(err as Error).message}\n${usage}`, 2);
  }
  const command = parsed.positionals[0];
  if (parsed.values.help || !command) fail(usage, command ? 0 : 2);
  if (!commands.includes(command)) fail(`unknown command "${command}"\n${usage}`, 2);
  if (!parsed.values.config) fail(`--config FILE is required\n${usage}`, 2);
  return { command, config: parsed.values.config };
}

export function fail(message: string, code = 1): never {
  process.stderr.write(message.endsWith('\n') ? message : `${message}\n`);
  process.exit(code);
}

/** One line for a start-up failure: typed errors already say file, key or setting. */
export function describeError(err: unknown): string {
  if (isErpEdgeError(err)) return `${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

/**
 * A second signal this soon after the first is the same request: Ctrl+C under `npm start` or `npx`
 * reaches the process twice, from the terminal and forwarded by npm.
 */
const SAME_REQUEST_MS = 1_000;

/** Stops cleanly on SIGINT/SIGTERM (service stop); a second signal (a second Ctrl+C) exits at once. */
export function onShutdown(stop: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const handler = (signal: string) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < SAME_REQUEST_MS) return;
      process.stderr.write(`${signal} again while stopping: exiting now\n`);
      process.exit(1);
    }
    stoppingSince = Date.now();
    stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`error while stopping on ${signal}: ${describeError(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

/** Loads a config, or exits 1 with the one-line error (file:line:col and key for config faults). */
export function loadOrExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    return fail(describeError(err));
  }
}

/**
 * Starts a long-running service; a start-up failure is logged as fatal and exits 1. Stops on
 * SIGINT/SIGTERM, including one that arrives while it is still starting: the handler is in place
 * before start begins (else the default action kills the process, exit by signal, mid-start), and
 * the stop runs as soon as start has finished (a half-started service has nothing to stop yet).
 */
export async function runService(logger: Logger, what: string, start: () => Promise<{ stop(): Promise<void> }>): Promise<void> {
  const starting = start();
  onShutdown(async () => {
    const service = await starting.catch(() => undefined);
    await service?.stop();
  });
  try {
    await starting;
  } catch (err) {
    logger.fatal({ err: { message: describeError(err) } }, `${what} failed to start`);
    fail(describeError(err));
  }
}
