/**
 * Outbox rollback recovery (#12 item 2), with the relay and the agent as child processes on a
 * spawned Mosquitto: an outbox restored from an older copy (a VM snapshot, a backup) keeps its
 * epoch, so its next records would reuse seqs the relay already holds. The agent learns it from an
 * ack above its last seq and moves the stream to a new epoch before it sends anything new.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { processSite } from '../helpers/process-site.js';
import { waitFor } from '../helpers/net.js';
import { MOSQUITTO_INSTALL, requireBinary } from '../helpers/requirements.js';
import { agentYaml, CliProcess, dropCsvFiles, waitForHttp, type RelayEvent } from '../helpers/pipeline.js';
import { readOutboxStatus } from '../../agent/outbox/outbox.js';

const hasMosquitto = requireBinary('mosquitto', MOSQUITTO_INSTALL);
const SITE = 'site-a';
const AGENT = 'agent-1';
const FILES = ['outbox.db', 'outbox.db-wal', 'outbox.db-shm'];

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Every stored event of the stream, in every epoch, with its epoch. */
async function allEvents(httpUrl: string): Promise<(RelayEvent & { epoch: string })[]> {
  const { streams } = await get<{ streams: { site: string; agent: string; stream: string; epoch: string }[] }>(`${httpUrl}/api/streams`);
  const out: (RelayEvent & { epoch: string })[] = [];
  for (const s of streams.filter((x) => x.site === SITE && x.agent === AGENT && x.stream === 'orders')) {
    let after = 0;
    for (;;) {
      const page = await get<{ events: RelayEvent[]; next_after: number }>(
        `${httpUrl}/api/events?site=${SITE}&agent=${AGENT}&stream=orders&epoch=${s.epoch}&after=${after}&limit=5000`,
      );
      out.push(...page.events.map((e) => ({ ...e, epoch: s.epoch })));
      if (page.events.length === 0) break;
      after = page.next_after;
    }
  }
  return out;
}

function orders(outboxPath: string) {
  return readOutboxStatus(outboxPath).streams.find((s) => s.stream === 'orders');
}

describe.skipIf(!hasMosquitto)('outbox rollback recovery (relay and agent as child processes)', () => {
  it('an outbox restored from an older copy moves to a new epoch on the first ack above its last seq: every record captured after the restore reaches the relay, no conflict', async () => {
    const { dir, mosquitto, httpUrl, inbox, dataDir, outboxPath } = await processSite(cleanups, 'rollback-');
    writeFileSync(join(dir, 'agent.yaml'), agentYaml({ url: mosquitto.url, inbox, dataDir, batchSize: 50 }));
    const relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    const agent = new CliProcess('edge-agent', join(dir, 'agent.yaml'), join(dir, 'agent.log'));
    cleanups.push(() => agent.kill('SIGTERM'), () => relay.kill('SIGTERM'));

    // A: captured and acked.
    relay.start();
    await waitForHttp(httpUrl);
    agent.start();
    dropCsvFiles(inbox, 1, 100, 1, 'a');
    await waitFor('A acked', () => orders(outboxPath)?.ackedSeq === 100, 30_000, 100);

    // B: captured while the relay is away, so it is pending when the copy is taken (agent stopped).
    await relay.kill('SIGTERM');
    dropCsvFiles(inbox, 1, 100, 101, 'b');
    await waitFor('B in the outbox', () => orders(outboxPath)?.lastSeq === 200, 30_000, 100);
    await agent.kill('SIGTERM');
    const backup = join(dir, 'backup');
    mkdirSync(backup);
    for (const f of FILES) if (existsSync(join(dataDir, f))) copyFileSync(join(dataDir, f), join(backup, f));
    const epoch = orders(outboxPath)!.epoch;

    // Run on: B delivered, then C captured and acked (the relay holds 1..300 in the first epoch).
    relay.start();
    await waitForHttp(httpUrl);
    agent.start();
    await waitFor('B acked', () => orders(outboxPath)?.ackedSeq === 200, 30_000, 100);
    dropCsvFiles(inbox, 1, 100, 201, 'c');
    await waitFor('C acked', () => orders(outboxPath)?.ackedSeq === 300, 30_000, 100);
    await agent.kill('SIGTERM');

    // Restore the copy: same epoch, last seq 200, B pending again.
    for (const f of FILES) rmSync(join(dataDir, f), { force: true });
    for (const f of FILES) if (existsSync(join(backup, f))) copyFileSync(join(backup, f), join(dataDir, f));
    expect(orders(outboxPath)).toMatchObject({ epoch, lastSeq: 200, ackedSeq: 100 });
    agent.start();
    // B is resent; the relay recognises it and answers ok up to 300, above the outbox's 200.
    await waitFor('the stream moved to a new epoch', () => {
      const s = orders(outboxPath);
      return s !== undefined && s.epoch !== epoch;
    }, 30_000, 100);
    expect(orders(outboxPath)).toMatchObject({ lastSeq: 0, pending: 0 });

    // D: captured after the restore; it goes out in the new epoch from seq 1.
    dropCsvFiles(inbox, 1, 100, 301, 'd');
    await waitFor('D acked', () => orders(outboxPath)?.ackedSeq === 100, 30_000, 100);

    const evs = await allEvents(httpUrl);
    const ns = evs.map((e) => Number(e.data.fields.n)).sort((a, b) => a - b);
    expect(ns).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    expect(new Set(evs.map((e) => e.id)).size).toBe(400);
    const newEpoch = orders(outboxPath)!.epoch;
    const d = evs.filter((e) => e.epoch === newEpoch);
    expect(d.map((e) => e.seq)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(d.map((e) => Number(e.data.fields.n))).toEqual(Array.from({ length: 100 }, (_, i) => 301 + i));
    // Both epochs readable; no seq the relay held was ever offered with another record.
    expect(evs.filter((e) => e.epoch === epoch)).toHaveLength(300);
    const stats = await get<{ conflicts: number; conflict_acks: number; new_epochs: number }>(`${httpUrl}/api/stats`);
    expect(stats.conflicts).toBe(0);
    expect(stats.conflict_acks).toBe(0);
  });
});
