import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, waitFor } from './net.js';
import { mosquittoBinary } from './requirements.js';

/** A Mosquitto of the test's own, on a free loopback port, with a temp config; stop() kills it. */
export class MosquittoProcess {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly confPath: string,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** `extra`: more mosquitto.conf lines (e.g. an `acl_file`). */
  static async start(dir: string, port?: number, extra: readonly string[] = []): Promise<MosquittoProcess> {
    const p = port ?? (await freePort());
    const conf = join(dir, `mosquitto-${p}.conf`);
    // Queue generously for the relay's persistent session: tests restart the relay mid-stream.
    writeFileSync(conf, [`listener ${p} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'max_queued_messages 100000', 'set_tcp_nodelay true', 'log_type error', ...extra, ''].join('\n'));
    const m = new MosquittoProcess(p, conf);
    await m.restart();
    return m;
  }

  /** (Re)starts on the same port, e.g. after stop() to end an offline period. */
  async restart(): Promise<void> {
    const proc = spawn(mosquittoBinary(), ['-c', this.confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => (stderr += String(d)));
    this.proc = proc;
    await waitFor(
      `mosquitto on port ${this.port}`,
      () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${stderr.trim()}`);
        return canConnect(this.port);
      },
      10_000,
    );
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    this.proc = undefined;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill(signal);
    await exited;
  }
}
