import { access, copyFile, mkdir, rename, unlink } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';

/** Moves a file into a folder, never overwriting: a taken name gets a numeric suffix. Works across volumes. */
export async function moveFile(src: string, destDir: string, name = basename(src)): Promise<string> {
  await mkdir(destDir, { recursive: true });
  let dest = join(destDir, name);
  for (let i = 1; await exists(dest); i++) dest = join(destDir, `${name}.${i}`);
  try {
    await rename(src, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(src, dest);
    await unlink(src);
  }
  return dest;
}

async function exists(p: string): Promise<boolean> {
  return access(p).then(
    () => true,
    () => false,
  );
}

/** YYYY-MM-DD in the machine's time zone: the warehouse's day, as IT reads the archive. */
export function localDate(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

/** SHA-256 of a file's bytes (for a file refused before its scan could finish). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest('hex');
}

