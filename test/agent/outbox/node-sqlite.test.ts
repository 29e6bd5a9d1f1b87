import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { node22 } from '../../helpers/node22.js';
import { makeTempDir } from '../../helpers/tmp.js';

// The outbox suite (every file of test/agent/outbox) again, on the node:sqlite binding: the
// Windows executable's. This machine's Node (20) has none, so a Node 22 of the release the
// Windows executable embeds runs vitest on the same files with ERP_EDGE_SQLITE=node:sqlite.
// (Inside that run this file skips itself.)
const ROOT = resolve(import.meta.dirname, '../../..');

describe('the outbox suite on node:sqlite', () => {
  it('passes every outbox test under Node 22 with ERP_EDGE_SQLITE=node:sqlite', async ({ skip }) => {
    if (process.env.ERP_EDGE_SQLITE) skip();
    const found = await node22();
    if ('missing' in found) {
      console.warn(`SKIPPING the node:sqlite run: ${found.missing}`);
      return skip();
    }
    const { dir, cleanup } = makeTempDir('erp-edge-node-sqlite-');
    try {
      const report = join(dir, 'report.json');
      const child = spawn(
        found.node,
        [join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/agent/outbox/', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`],
        { cwd: ROOT, env: { ...process.env, ERP_EDGE_SQLITE: 'node:sqlite', NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (d) => (output += String(d)));
      child.stderr.on('data', (d) => (output += String(d)));
      const [code] = (await once(child, 'exit')) as [number | null];
      if (code !== 0) throw new Error(`the node:sqlite run failed (exit ${code}):\n${output.slice(-8000)}`);
      const r = JSON.parse(readFileSync(report, 'utf8')) as { numTotalTests: number; numPassedTests: number; numFailedTests: number; numPendingTests: number };
      console.log(`node:sqlite run: ${r.numPassedTests} passed, ${r.numPendingTests} skipped (this file), ${r.numFailedTests} failed`);
      expect(r.numFailedTests).toBe(0);
      // Everything but this file's own test ran: no outbox test skips itself on node:sqlite.
      expect(r.numPendingTests).toBe(1);
      expect(r.numPassedTests).toBe(r.numTotalTests - 1);
      expect(r.numPassedTests).toBeGreaterThan(60);
    } finally {
      cleanup();
    }
  }, 6 * 60_000);
});
