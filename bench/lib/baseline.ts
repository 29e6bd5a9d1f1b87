import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AGENT_NODE_FLAGS } from '../../agent/runtime-flags.js';
import { ScenarioUnavailable, type Baseline } from '../types.js';

const ROOT = resolve(import.meta.dirname, '../..');

function git(args: string[], cwd = ROOT): string {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new ScenarioUnavailable(`git ${args.join(' ')} failed: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout.trim();
}

/**
 * Which Node flags the baseline's agent runs with: `own`, those its release shipped (its
 * agent/runtime-flags.ts: "before" as it ran as a service), or `current`, this tree's (the same
 * runtime for both: what the code alone costs).
 */
export type BaselineFlags = 'own' | 'current';

/**
 * Builds another revision of this repository (a git worktree in the temp folder, sharing this
 * tree's node_modules) so that a scenario can measure it in the same run as this tree, runs
 * interleaved: "before and after" on the same machine in the same minutes, not two runs days apart.
 */
export function prepareBaseline(ref: string, flags: BaselineFlags = 'own'): Baseline {
  const sha = git(['rev-parse', '--verify', `${ref}^{commit}`]);
  const dir = join(tmpdir(), `erp-edge-baseline-${sha.slice(0, 12)}`);
  const dist = { agent: join(dir, 'dist', 'agent', 'cli.js'), relay: join(dir, 'dist', 'cloud-relay', 'cli.js') };
  if (!existsSync(dist.agent) || !existsSync(dist.relay)) {
    rmSync(dir, { recursive: true, force: true });
    git(['worktree', 'prune']);
    git(['worktree', 'add', '--detach', dir, sha]);
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    const tsc = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: dir, encoding: 'utf8' });
    if (!existsSync(dist.agent)) throw new ScenarioUnavailable(`baseline ${ref} did not build: ${tsc.stdout}${tsc.stderr}`);
    // Revisions whose relay serves the dashboard refuse to start without its files beside the
    // compiled code: copy them as that revision's own build did.
    const copy = join(dir, 'scripts', 'copy-dashboard.mjs');
    if (existsSync(copy)) {
      const r = spawnSync(process.execPath, [copy], { cwd: dir, encoding: 'utf8' });
      if (r.status !== 0) throw new ScenarioUnavailable(`baseline ${ref}: copying the dashboard failed: ${r.stdout}${r.stderr}`);
    }
  }
  return {
    ref,
    sha,
    dist: { ...dist, agentFlags: flags === 'own' ? ownAgentFlags(join(dir, 'dist', 'agent', 'runtime-flags.js')) : AGENT_NODE_FLAGS },
    remove: () => {
      spawnSync('git', ['worktree', 'remove', '--force', dir], { cwd: ROOT });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** AGENT_NODE_FLAGS of a compiled revision; none when it has no such module (it ran on Node's defaults). */
function ownAgentFlags(module: string): readonly string[] {
  if (!existsSync(module)) return [];
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const m = await import(${JSON.stringify(pathToFileURL(module).href)}); process.stdout.write(JSON.stringify(m.AGENT_NODE_FLAGS ?? []))`], { encoding: 'utf8' });
  if (r.status !== 0) throw new ScenarioUnavailable(`could not read the baseline's agent flags from ${module}: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout) as string[];
}
