import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, waitFor } from './net.js';

/** Live brokers of this process: killed with -9 if Node exits without stopping them. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(proc: ChildProcess): void {
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    });
  }
}

/**
 * A Mosquitto with a config of the caller's choosing (persistence, a bridge), on a fixed
 * loopback port, so it can be killed and restarted on the same port and persistence folder.
 * Modelled on bench/lib/mosquitto.ts, which only knows a non-persistent plain broker.
 */
export class BridgeMosquitto {
  private proc: ChildProcess | undefined;
  private stderr = '';

  constructor(
    readonly bin: string,
    readonly label: string,
    readonly port: number,
    readonly confPath: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Writes `conf` (lines, without the listener) to `dir/<label>.conf`; does not start it. */
  static configure(bin: string, dir: string, label: string, port: number, conf: string[]): BridgeMosquitto {
    mkdirSync(dir, { recursive: true });
    const confPath = join(dir, `${label}.conf`);
    writeFileSync(confPath, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', ...conf, ''].join('\n'));
    return new BridgeMosquitto(bin, label, port, confPath);
  }

  /** Spawns it and resolves once its listener accepts TCP connections (persistence is loaded by then). */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.proc) throw new Error(`${this.label} mosquitto already running`);
    this.stderr = '';
    const proc = spawn(this.bin, ['-c', this.confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr?.on('data', (d) => {
      this.stderr = (this.stderr + String(d)).slice(-4_000);
    });
    track(proc);
    this.proc = proc;
    let exited = false;
    proc.once('exit', () => (exited = true));
    await waitFor(
      `${this.label} mosquitto on 127.0.0.1:${this.port}`,
      async () => {
        if (exited) throw new Error(`${this.label} mosquitto exited at start: ${this.stderr.trim()}`);
        return canConnect(this.port);
      },
      timeoutMs,
      10,
    );
  }

  /** Last lines Mosquitto wrote to stderr (its log), for error messages. */
  get log(): string {
    return this.stderr.trim();
  }

  /**
   * Stops it with `signal` (SIGTERM: graceful, persistence written; SIGKILL: a crash) and waits
   * for the exit; a process still alive after `graceMs` is killed with -9.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 30_000): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
