import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canConnect, freePort, waitFor } from './net.js';
import { mosquittoBinary } from './requirements.js';

export interface MosquittoOptions {
  /** More mosquitto.conf lines, after the listener and the options below. */
  extra?: readonly string[];
  /** A TLS listener (url becomes mqtts://). Files must be readable by the `mosquitto` user when started as root. */
  tls?: { cafile: string; certfile: string; keyfile: string; requireCertificate?: boolean; useIdentityAsUsername?: boolean };
  aclFile?: string;
  /** From `mosquitto_passwd`; turns anonymous access off unless `allowAnonymous`. */
  passwordFile?: string;
  allowAnonymous?: boolean;
  /** `log_type` (e.g. `error warning notice`): what reaches `stderr`. */
  logTypes?: string;
}

/** A Mosquitto of the test's own, on a free loopback port, with a temp config; stop() kills it. */
export class MosquittoProcess {
  private proc: ChildProcess | undefined;
  private constructor(
    readonly port: number,
    private readonly confPath: string,
    private readonly scheme: 'mqtt' | 'mqtts' = 'mqtt',
  ) {}

  /** What Mosquitto printed on stderr so far (its log, with `logTypes`). */
  stderr = '';

  get url(): string {
    return `${this.scheme}://127.0.0.1:${this.port}`;
  }

  /**
   * `extra`: more mosquitto.conf lines (e.g. an `acl_file`), or the options below. Plain TCP and
   * anonymous unless `tls` / `passwordFile` say otherwise.
   */
  static async start(dir: string, port?: number, extra: readonly string[] | MosquittoOptions = []): Promise<MosquittoProcess> {
    const o: MosquittoOptions = Array.isArray(extra) ? { extra: extra as readonly string[] } : (extra as MosquittoOptions);
    const p = port ?? (await freePort());
    const conf = join(dir, `mosquitto-${p}.conf`);
    const listener = [`listener ${p} 127.0.0.1`];
    if (o.tls) {
      listener.push(`cafile ${o.tls.cafile}`, `certfile ${o.tls.certfile}`, `keyfile ${o.tls.keyfile}`);
      if (o.tls.requireCertificate) listener.push('require_certificate true');
      if (o.tls.useIdentityAsUsername) listener.push('use_identity_as_username true');
    }
    const auth = o.passwordFile ? [`password_file ${o.passwordFile}`] : [];
    const anonymous = o.allowAnonymous ?? !(o.passwordFile || o.tls?.useIdentityAsUsername);
    const acl = o.aclFile ? [`acl_file ${o.aclFile}`] : [];
    // Queue generously for the relay's persistent session: tests restart the relay mid-stream.
    const lines = [...listener, `allow_anonymous ${anonymous}`, ...auth, ...acl, 'persistence false', 'max_queued_messages 100000', 'set_tcp_nodelay true', `log_type ${o.logTypes ?? 'error'}`, ...(o.extra ?? []), ''];
    writeFileSync(conf, lines.join('\n'));
    const m = new MosquittoProcess(p, conf, o.tls ? 'mqtts' : 'mqtt');
    await m.restart();
    return m;
  }

  /** (Re)starts on the same port, e.g. after stop() to end an offline period. */
  async restart(): Promise<void> {
    const proc = spawn(mosquittoBinary(), ['-c', this.confPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => {
      stderr += String(d);
      this.stderr += String(d);
    });
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
