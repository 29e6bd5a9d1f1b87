import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteRelayStore } from '../../../cloud-relay/store/sqlite-store.js';
import { createLogger } from '../../../common/logger.js';
import { freePort } from '../../helpers/net.js';
import { range } from '../../helpers/relay-wire.js';
import { makeTempDir } from '../../helpers/tmp.js';
import { FlakyReceiver } from './receiver.js';
import { storeBatch } from './store-feed.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const STREAMS = ['orders', 'returns', 'moves'];

/**
 * The relay process killed (-9) while its webhook sink waits on answers: started again on the same
 * store, it carries on from the committed cursors. The receiver ends with every event (at least
 * once; de-duplicated by id), in seq order per stream.
 */
describe('webhook sink across a relay crash', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  const startRelay = (config: string): ChildProcess => {
    const proc = spawn(process.execPath, [resolve(ROOT, 'bin', 'cloud-relay.js'), 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    cleanups.push(() => proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
    return proc;
  };

  it('loses nothing and keeps the order when the relay is killed mid-delivery and started again', async () => {
    const tmp = makeTempDir('erp-edge-sink-crash-');
    cleanups.push(() => tmp.cleanup());
    const dbPath = join(tmp.dir, 'relay.db');
    const store = new SqliteRelayStore({ path: dbPath, dedupeWindowMs: 0, log: createLogger({ level: 'silent' }) });
    for (const stream of STREAMS) for (let from = 1; from <= 100; from += 25) await storeBatch(store, from, from + 24, { stream, idPrefix: `${stream}#` });
    await store.close();
    // Every answer a little late: the kill lands while the sink waits on one.
    const rx = await FlakyReceiver.start({ seed: 21, slowRate: 1, slowMs: 150 });
    cleanups.push(() => rx.stop());
    const config = join(tmp.dir, 'relay.yaml');
    writeFileSync(
      config,
      [
        'broker: embedded',
        `embedded_broker: { host: 127.0.0.1, port: ${await freePort()} }`,
        `http: { host: 127.0.0.1, port: ${await freePort()} }`,
        `store: { path: ${JSON.stringify(dbPath)} }`,
        'auth: { disabled: true }',
        'log_level: warn',
        'sinks:',
        `  - { name: erp, type: webhook, url: "${rx.url}", batch_size: 10, timeout: 5s, poll: 100ms, retry: { initial: 20ms, max: 100ms } }`,
        '',
      ].join('\n'),
    );

    let relay = startRelay(config);
    await rx.until('some events before the kill', () => rx.total >= 60);
    relay.kill('SIGKILL');
    await once(relay, 'exit');
    const beforeRestart = rx.total;
    expect(beforeRestart).toBeLessThan(300);

    relay = startRelay(config);
    await rx.until('every event after the restart', () => rx.total === 300);
    for (const stream of STREAMS) expect(rx.seqs(stream)).toEqual(range(1, 100));
    relay.kill('SIGTERM');
    await once(relay, 'exit');
    expect(relay.exitCode).toBe(0);
  }, 180_000);
});
