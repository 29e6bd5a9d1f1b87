/**
 * `edge-agent outbox verify | repair | resend` (#12 item 4) through the CLI, with the relay and the
 * agent as child processes on a spawned Mosquitto: a record row damaged by the test (raw SQL on the
 * file) is found by verify, quarantined by repair, and the agent starts and delivers the rest.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { processSite } from '../helpers/process-site.js';
import { waitFor } from '../helpers/net.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, CliProcess, dropCsvFiles, fetchAllEvents, waitForHttp } from '../helpers/pipeline.js';
import { runCli, runCliAsync } from '../helpers/cli.js';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Replaces the record line of `seq` in the outbox file, as a damaged disk block would. */
function damage(outboxPath: string, seq: number, line: string): void {
  const db = new Database(outboxPath);
  try {
    const c = db.prepare("SELECT gid, first_seq, payload FROM chunks WHERE stream = 'orders' AND first_seq <= ? AND last_seq >= ?").get(seq, seq) as { gid: number; first_seq: number; payload: string };
    const lines = c.payload.split('\n');
    lines[seq - c.first_seq] = line;
    db.prepare('UPDATE chunks SET payload = ? WHERE gid = ?').run(lines.join('\n'), c.gid);
  } finally {
    db.close();
  }
}

describe.skipIf(!hasMosquitto)('edge-agent outbox verify / repair / resend', () => {
  it('a damaged record row: verify fails naming it, repair quarantines it into the dead-letter table, the agent starts and delivers the rest; resend of retained records is recognised by the relay', async () => {
    const { dir, mosquitto, httpUrl, inbox, dataDir, outboxPath } = await processSite(cleanups, 'outbox-tools-');
    const config = join(dir, 'agent.yaml');
    writeFileSync(config, agentYaml({ url: mosquitto.url, inbox, dataDir, batchSize: 40 }));
    const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    const agent = new CliProcess('edge-agent', config, join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));
    const orders = () => readOutboxStatus(outboxPath).streams.find((s) => s.stream === 'orders');

    // 100 records captured with no relay: all pending. Then the agent stops and a row is damaged.
    agent.start();
    dropCsvFiles(inbox, 1, 100);
    await waitFor('100 records in the outbox', () => orders()?.lastSeq === 100, 30_000, 100);
    await agent.kill('SIGTERM');
    expect(runCli('edge-agent', ['outbox', 'verify', '--config', config]).status).toBe(0);
    damage(outboxPath, 50, '{"seq":50,"id":"half a rec');

    const bad = runCli('edge-agent', ['outbox', 'verify', '--config', config]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/FAIL {2}seq contiguity/);
    expect(bad.stdout).toMatch(/orders seq 50: record is not valid JSON/);
    const badJson = JSON.parse(runCli('edge-agent', ['outbox', 'verify', '--config', config, '--json']).stdout) as { ok: boolean; checks: { name: string; problems: string[] }[] };
    expect(badJson.ok).toBe(false);
    expect(badJson.checks.map((c) => c.name)).toEqual(['sqlite integrity', 'schema', 'seq contiguity', 'checkpoints', 'dead letters']);

    const repaired = runCli('edge-agent', ['outbox', 'repair', '--config', config]);
    expect(repaired.stderr).toBe('');
    expect(repaired.status).toBe(0);
    expect(repaired.stdout).toMatch(/1 record\(s\) moved to the dead-letter table/);
    expect(repaired.stdout).toMatch(/orders seq 50: record is not valid JSON/);
    expect(repaired.stdout).toMatch(/outbox verify after repair: ok/);
    const ok = runCli('edge-agent', ['outbox', 'verify', '--config', config]);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/outbox verify: ok/);
    const dead = JSON.parse(runCli('edge-agent', ['deadletter', 'list', '--config', config, '--json']).stdout) as { seq: number; origin: string; reason: string }[];
    expect(dead).toEqual([expect.objectContaining({ seq: 50, origin: 'repair', reason: expect.stringMatching(/not valid JSON/) })]);

    // The agent starts and delivers the other 99; the relay is told seq 50 is skipped.
    relay.start();
    await waitForHttp(httpUrl);
    agent.start();
    await waitFor('acked up to 100', () => orders()?.ackedSeq === 100, 30_000, 100);
    const evs = await fetchAllEvents(httpUrl, 'site-a', 'agent-1', 'orders');
    expect(evs.map((e) => Number(e.data.fields.n))).toEqual(Array.from({ length: 100 }, (_, i) => i + 1).filter((n) => n !== 50));
    const stats = (await (await fetch(`${httpUrl}/api/stats`)).json()) as { skipped: { dead_letter: number }; duplicate_ids: number };
    expect(stats.skipped.dead_letter).toBe(1);

    // repair refuses while the agent runs (it must be the only writer).
    const busy = await runCliAsync('edge-agent', ['outbox', 'repair', '--config', config]);
    expect(busy.status).not.toBe(0);
    expect(busy.stderr).toMatch(/the agent is running/);

    // resend through the running agent: the retained records go again as new records; the relay
    // recognises every one by id and stores nothing twice.
    const resent = await runCliAsync('edge-agent', ['outbox', 'resend', '--config', config, '--stream', 'orders', '--from', '1']);
    expect(resent.stderr).toBe('');
    expect(resent.stdout).toMatch(/resent 99 retained record\(s\) of orders .* \(by the running agent\)/);
    await waitFor('copies acked', () => orders()?.ackedSeq === 199, 30_000, 100);
    const after = (await (await fetch(`${httpUrl}/api/stats`)).json()) as { duplicate_ids: number };
    expect(after.duplicate_ids).toBe(99);
    expect(await fetchAllEvents(httpUrl, 'site-a', 'agent-1', 'orders')).toHaveLength(99);

    // And with the agent stopped: the CLI opens the file itself and prints its progress (no TTY: lines).
    await agent.kill('SIGTERM');
    const offline = runCli('edge-agent', ['outbox', 'resend', '--config', config, '--stream', 'orders', '--from', '150']);
    expect(offline.status).toBe(0);
    expect(offline.stdout).toMatch(/resent 50\/50\n/);
    expect(offline.stdout).toMatch(/resent 50 retained record\(s\) of orders \(seqs up to 199\)/);
    expect(orders()?.lastSeq).toBe(249);
  });
});
