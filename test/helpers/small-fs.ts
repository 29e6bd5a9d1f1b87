import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A size-limited file system mounted at `dir` for a disk-full test: a tmpfs (`mount -t tmpfs -o
 * size=…`), else a loop-mounted ext4 image. Needs root (or CAP_SYS_ADMIN). Returns how to unmount,
 * or undefined when neither could be mounted: the caller skips locally; under CI=true it throws.
 */
export function mountSmallFs(dir: string, bytes: number): { unmount: () => void; kind: string } | undefined {
  mkdirSync(dir, { recursive: true });
  const tried: string[] = [];
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'pipe' });
    return { kind: 'tmpfs', unmount: () => execFileSync('umount', ['-l', dir], { stdio: 'pipe' }) };
  } catch (err) {
    tried.push(`tmpfs: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
  }
  const image = join(dir, '..', `${dir.split('/').pop()}.img`);
  try {
    execFileSync('truncate', ['-s', String(Math.max(bytes, 1 << 20)), image], { stdio: 'pipe' });
    execFileSync('mkfs.ext4', ['-q', '-F', image], { stdio: 'pipe' });
    execFileSync('mount', ['-o', 'loop', image, dir], { stdio: 'pipe' });
    return {
      kind: 'ext4 loop image',
      unmount: () => {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
        rmSync(image, { force: true });
      },
    };
  } catch (err) {
    rmSync(image, { force: true });
    tried.push(`loop ext4: ${String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim()}`);
  }
  const message = `cannot mount a size-limited file system for the disk-full test (needs root): ${tried.join('; ')}`;
  if (process.env.CI === 'true') throw new Error(`CI: ${message}`);
  console.warn(`SKIPPING: ${message}`);
  return undefined;
}
