import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { findBinary, requireBinary } from './requirements.js';

export const SOCAT_INSTALL = 'sudo apt-get install -y socat (or npm test, whose ensure-test-deps installs it)';

/** Whether socat is there; under CI=true a missing socat throws (a failure, never a skip). */
export function hasSocat(): boolean {
  return requireBinary('socat', SOCAT_INSTALL);
}

/**
 * A real pseudo-terminal pair made by socat, as a null-modem cable between two serial ports:
 * `port` is the end the collector opens (a symlink to /dev/pts/N), the test writes into `peer`.
 * `close()` kills socat: both ptys vanish, as a USB adapter does when unplugged (the collector's
 * reads fail). `open()` makes a new pair at the same link paths, as the adapter plugged back in.
 */
export class PtyPair {
  /** The collector's end. */
  readonly port: string;
  /** The test's end. */
  readonly peer: string;
  private socat: ChildProcess | undefined;
  private writer: FileHandle | undefined;

  constructor(dir: string) {
    this.port = join(dir, 'port');
    this.peer = join(dir, 'peer');
  }

  get isOpen(): boolean {
    return this.socat !== undefined;
  }

  /** Starts socat; resolves once both ptys exist and socat relays between them. */
  async open(): Promise<void> {
    if (this.socat) throw new Error('pty pair is already open');
    const bin = findBinary('socat');
    if (!bin) throw new Error(`socat is not installed; ${SOCAT_INSTALL}`);
    // raw, echo=0: no line discipline on either side (no CR/LF translation, no echo back to the writer).
    const child = spawn(bin, ['-d', '-d', `pty,raw,echo=0,link=${this.port}`, `pty,raw,echo=0,link=${this.peer}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.socat = child;
    let stderr = '';
    try {
      await new Promise<void>((resolve, reject) => {
        const ptys: string[] = [];
        const onData = (chunk: Buffer) => {
          stderr += chunk.toString();
          for (const m of stderr.matchAll(/PTY is (\/dev\/\S+)/g)) if (!ptys.includes(m[1]!)) ptys.push(m[1]!);
          // socat creates both links while opening its two addresses, before its transfer loop starts.
          if (ptys.length === 2 && /starting data transfer loop/.test(stderr)) {
            child.stderr!.off('data', onData);
            if (!existsSync(this.port) || !existsSync(this.peer)) reject(new Error(`socat started but the links are missing:\n${stderr}`));
            else resolve();
          }
        };
        child.stderr!.on('data', onData);
        child.once('error', reject);
        child.once('exit', (code, sig) => reject(new Error(`socat exited (${code ?? sig}) before the ptys were ready:\n${stderr}`)));
      });
    } catch (err) {
      this.socat = undefined;
      child.kill('SIGKILL');
      throw err;
    }
    // Keep reading socat's stderr so it never blocks on a full pipe.
    child.stderr!.resume();
  }

  /** Writes into the test's end: the collector reads these bytes from `port`. */
  async write(data: string | Buffer): Promise<void> {
    if (!this.socat) throw new Error('pty pair is closed');
    this.writer ??= await open(this.peer, 'w');
    await this.writer.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Kills socat (SIGTERM: it removes its links) and waits for it to exit: both ptys are gone. */
  async close(): Promise<void> {
    const child = this.socat;
    if (!child) return;
    const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : once(child, 'exit');
    child.kill('SIGTERM');
    await exited;
    this.socat = undefined;
    // After socat: a write blocked on a full pty fails now instead of holding the close.
    const w = this.writer;
    this.writer = undefined;
    await w?.close();
  }
}
