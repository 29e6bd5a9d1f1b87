import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * `npm ci` on a fresh clone needs a lockfile that matches package.json, and `npm install` rewrites
 * a lockfile that lacks other platforms' optional packages (esbuild's, rollup's): the tree is then
 * dirty after the README's first command. Checked here without the network; the full check (a clone,
 * `npm ci`, `git status --porcelain` empty) was run by hand (README: Quick start).
 */
const ROOT = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
const lock = JSON.parse(readFileSync(resolve(ROOT, 'package-lock.json'), 'utf8')) as {
  lockfileVersion: number;
  packages: Record<string, { dependencies?: Record<string, string>; devDependencies?: Record<string, string>; optionalDependencies?: Record<string, string>; engines?: unknown }>;
};

describe('package-lock.json', () => {
  it('records exactly the dependencies package.json declares (npm ci refuses a lockfile out of sync)', () => {
    const root = lock.packages['']!;
    expect(lock.lockfileVersion).toBe(3);
    expect(root.dependencies ?? {}).toEqual(pkg.dependencies ?? {});
    expect(root.devDependencies ?? {}).toEqual(pkg.devDependencies ?? {});
    expect(root.engines).toEqual(pkg.engines);
  });

  it('holds every optional (per-platform) package any locked package asks for, for every platform', () => {
    const missing: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        // npm's resolution: the nearest node_modules up from the package that depends on it.
        const candidates: string[] = [];
        let base = path;
        for (;;) {
          candidates.push(`${base ? `${base}/` : ''}node_modules/${name}`);
          const cut = base.lastIndexOf('node_modules/');
          if (cut < 0) break;
          base = base.slice(0, cut).replace(/\/$/, '');
        }
        if (!candidates.some((c) => c in lock.packages)) missing.push(`${name} (for ${path || 'the root'})`);
      }
    }
    expect(missing).toEqual([]);
    // The ones a Linux install alone would leave out, by name.
    for (const p of ['@esbuild/win32-x64', '@esbuild/darwin-arm64', '@rollup/rollup-win32-x64-msvc', '@rollup/rollup-darwin-arm64']) expect(lock.packages).toHaveProperty([`node_modules/${p}`]);
  });
});
