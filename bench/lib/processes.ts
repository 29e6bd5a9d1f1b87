import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { waitFor } from './net.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * A relay config for tests and the bench. `authKey: false` leaves the `auth:` block out, for a
 * baseline release before 0.4 (its strict config has no such key and its API has no auth).
 */
export function relayYaml(o: { dbPath: string; httpPort: number; brokerUrl?: string; embeddedPort?: number; extra?: string; authKey?: boolean }): string {
  const broker = o.brokerUrl ? `broker:\n  url: ${o.brokerUrl}` : `broker: embedded\nembedded_broker:\n  port: ${o.embeddedPort ?? 0}`;
  return `id: relay-test
log_level: ${process.env.ERP_EDGE_TEST_LOG ?? 'warn'}
${broker}
store:
  path: ${o.dbPath}
  synchronous: ${process.env.ERP_EDGE_RELAY_SYNC ?? "FULL"}
http:
  port: ${o.httpPort}
${o.authKey === false ? '' : '# Tests and the bench read the API without logging in (auth has its own tests).\nauth:\n  disabled: true\n'}${o.extra ?? ''}`;
}

/** The relay's count of stored events for a stream (from /api/streams, current epoch). */
export async function relayLastSeq(httpUrl: string, stream = 'orders'): Promise<number> {
  const res = await fetch(`${httpUrl}/api/streams`);
  const body = (await res.json()) as { streams: { stream: string; last_seq: number; current: boolean }[] };
  return body.streams.find((s) => s.stream === stream && s.current)?.last_seq ?? 0;
}

/** Runs `edge-agent` or `cloud-relay` as a child process (for kill -9 tests); output goes to a log file. */
export class CliProcess {
  private proc: ChildProcess | undefined;
  /** `entry`: a compiled JS entry point instead of bin/<bin>.js (the benchmark runs dist/, as a service would). */
  constructor(
    private readonly bin: 'edge-agent' | 'cloud-relay',
    private readonly configPath: string,
    private readonly logPath: string,
    private readonly entry?: string,
    private readonly nodeArgs: readonly string[] = [],
    /** `entry` is a single executable (npm run package): run it directly, its Node and flags are inside. */
    private readonly executable = false,
  ) {}

  start(env: NodeJS.ProcessEnv = {}): void {
    const log = createWriteStream(this.logPath, { flags: 'a' });
    // ERP_EDGE_CHILD_NODE_ARGS: extra node flags for the child (e.g. --cpu-prof while profiling).
    const extra = (process.env.ERP_EDGE_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const args = ['run', '--config', this.configPath];
    const [cmd, argv] = this.executable && this.entry ? [this.entry, args] : [process.execPath, [...this.nodeArgs, ...extra, this.entry ?? join(ROOT, 'bin', `${this.bin}.js`), ...args]];
    const proc = spawn(cmd, argv, {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    proc.stdout?.pipe(log);
    proc.stderr?.pipe(log);
    this.proc = proc;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.kill(signal);
    await exited;
  }
}

/** Waits until the relay's HTTP API answers (child relays take a moment to start). */
export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  await waitFor(`HTTP ${url}`, async () => (await fetch(`${url}/healthz`)).ok, timeoutMs, 100);
}
