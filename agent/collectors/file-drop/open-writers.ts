import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { setImmediate } from 'node:timers/promises';

/** Longest stretch the scan holds the event loop. */
const SLICE_MS = 4;

/**
 * Whether some process holds a file open for writing, from Linux's /proc: each process's fd links
 * name the file they point at (renames included), and fdinfo's `flags` say whether it was opened
 * to write. An ERP job that writes an export in place, pausing for a long query, keeps its fd open
 * the whole time, so this sees what no size or mtime check can.
 *
 * Cost: one readdir per process and one readlink per open fd, a few ms on a server (about 9 µs per
 * fd); done with sync calls because thousands of tiny async ones cost ten times more, in slices of
 * a few ms, twice per file (before it is claimed, and before it is archived). Processes of
 * other users are invisible unless the agent runs as root or as the writing user: those are
 * skipped, and the size/mtime stability check remains the guard for them (and for writers on other
 * machines, over SMB/NFS).
 *
 * Returns undefined where there is no /proc (Windows, macOS): there, claiming by rename fails while
 * a writer holds the file open, which is the guard instead.
 */
export async function heldForWriting(path: string): Promise<boolean | undefined> {
  const target = await realpath(path).catch(() => undefined);
  if (target === undefined) return false;
  const pids = attempt(() => readdirSync('/proc'));
  if (pids === undefined) return undefined;
  let slice = performance.now();
  for (const pid of pids) {
    if (isPid(pid) && processWrites(pid, target)) return true;
    // A host with tens of thousands of open fds: hand the event loop back every few ms (the forwarder runs there too).
    if (performance.now() - slice > SLICE_MS) {
      await setImmediate();
      slice = performance.now();
    }
  }
  return false;
}

function isPid(name: string): boolean {
  const c = name.charCodeAt(0);
  return c >= 48 && c <= 57;
}

function processWrites(pid: string, target: string): boolean {
  const dir = `/proc/${pid}/fd`;
  // EACCES (another user's process) or ENOENT (it exited): nothing we can see.
  const fds = attempt(() => readdirSync(dir)) ?? [];
  return fds.some((fd) => attempt(() => readlinkSync(`${dir}/${fd}`)) === target && openedToWrite(pid, fd));
}

/** fdinfo's flags are octal open(2) flags: O_WRONLY is 1, O_RDWR is 2. */
function openedToWrite(pid: string, fd: string): boolean {
  const info = attempt(() => readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')) ?? '';
  const m = /^flags:\s*([0-7]+)/m.exec(info);
  return m !== null && (parseInt(m[1]!, 8) & 3) !== 0;
}

/** /proc entries vanish as processes and fds close: any error means "nothing to see there". */
function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
