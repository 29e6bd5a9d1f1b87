import Database from 'better-sqlite3';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../../../agent/config.js';
import { create, SerialScanner } from '../../../../agent/collectors/scanner/serial.js';
import { scannerSerialSchema } from '../../../../agent/collectors/scanner/schema.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { isErpEdgeError } from '../../../../common/errors.js';
import { runCli } from '../../../helpers/cli.js';
import { testHost, type TestHost } from '../../../helpers/host.js';
import { waitFor } from '../../../helpers/net.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';
import { hasSocat, PtyPair } from '../../../helpers/pty-pair.js';

/** A scan record as read back from the outbox. */
interface ScanRec {
  seq: number;
  id: string;
  source: string;
  correlation_id: string;
  data: { device: string; seq: number; barcode: string; raw: string; received_at: number };
}

const files = useOutboxFiles('scanner-serial-');
const socat = hasSocat();

let pairs: PtyPair[] = [];
let collectors: { c: SerialScanner; host: TestHost }[] = [];

afterEach(async () => {
  // As the supervisor stops one: the instance's signal first (an append waiting for room gives up).
  for (const { c, host } of collectors) {
    host.abort.abort();
    await c.stop();
  }
  for (const p of pairs) await p.close();
  collectors = [];
  pairs = [];
});

function pair(): PtyPair {
  const p = new PtyPair(files.dir);
  pairs.push(p);
  return p;
}

/** Fast reopening: these tests unplug and replug within moments. */
function start(outbox: Outbox, path: string, cfg: Record<string, unknown> = {}): { c: SerialScanner; host: TestHost } {
  const parsed = scannerSerialSchema.parse({ type: 'scanner-serial', name: 'dock-3', path, reconnect: { initial: '20ms', max: '200ms' }, ...cfg });
  const host = testHost(outbox, parsed, files.dir);
  const c = create(parsed, host.ctx);
  expect(c).toBeInstanceOf(SerialScanner);
  collectors.push({ c: c as SerialScanner, host });
  return { c: c as SerialScanner, host };
}

function scans(outbox: Outbox, stream = 'dock-3'): ScanRec[] {
  return outbox.readPending(stream, 0, 1_000_000).map((r) => JSON.parse(r.payload) as ScanRec);
}

function counters(c: SerialScanner): Record<string, number | string | boolean> {
  return c.stats().counters!;
}

async function waitScans(outbox: Outbox, n: number, what = `${n} scans in the outbox`): Promise<ScanRec[]> {
  await waitFor(what, () => scans(outbox).length >= n, 15_000);
  return scans(outbox);
}

describe.skipIf(!socat)('scanner-serial over a socat pty pair', () => {
  it('cuts split and coalesced writes into exact scans, numbered per device', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const { c, host } = start(outbox, p.port);
    await c.start();
    expect(counters(c).port_open).toBe(true);
    // One scan split across reads, then several scans in one read: each write is read before the next.
    let written = 0;
    for (const w of ['0401234', '5678901\r', 'ABC-1\rABC-2\rABC-', '3\r']) {
      await p.write(w);
      written += w.length;
      await waitFor(`${written} bytes read`, () => counters(c).bytes === written, 15_000);
    }
    const got = await waitScans(outbox, 4);
    expect(got.map((r) => r.data.barcode)).toEqual(['04012345678901', 'ABC-1', 'ABC-2', 'ABC-3']);
    expect(got.map((r) => r.data.seq)).toEqual([1, 2, 3, 4]);
    expect(new Set(got.map((r) => r.data.device))).toEqual(new Set(['dock-3']));
    expect(got[0]!.source).toBe('scanner-serial:dock-3');
    expect(got[0]!.correlation_id).toBe('dock-3');
    expect(Buffer.from(got[0]!.data.raw, 'base64').toString()).toBe('04012345678901');
    expect(got.every((r) => typeof r.data.received_at === 'number')).toBe(true);
    expect(counters(c)).toMatchObject({ scans: 4, bytes: written, reopens: 0, open_failures: 0 });
    expect(host.failures).toEqual([]);
  });

  it('takes framing, line settings and the device id from its config', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const { c } = start(outbox, p.port, { baud_rate: 19200, data_bits: 7, parity: 'even', stop_bits: 2, rts_cts: true, device: 'gun-7', framing: { terminator: 'crlf' } });
    await c.start();
    await p.write('A1\r\nB2\r');
    await p.write('\n');
    const got = await waitScans(outbox, 2);
    expect(got.map((r) => [r.data.device, r.data.seq, r.data.barcode])).toEqual([
      ['gun-7', 1, 'A1'],
      ['gun-7', 2, 'B2'],
    ]);
  });

  it('a frame over max_length is discarded and counted; a multiplexer\'s device prefix names each scan\'s device', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const { c, host } = start(outbox, p.port, { framing: { max_length: 32 }, device_prefix: { separator: '|' } });
    await c.start();
    await p.write(`G1|A-1\r${'x'.repeat(5_000)}\rG2|B-1\rplain\rG1|A-2\r`);
    const got = await waitScans(outbox, 4);
    expect(got.map((r) => [r.data.device, r.data.seq, r.data.barcode])).toEqual([
      ['G1', 1, 'A-1'],
      ['G2', 1, 'B-1'],
      ['dock-3', 1, 'plain'],
      ['G1', 2, 'A-2'],
    ]);
    expect(counters(c)).toMatchObject({ oversize: 1, devices: 3 });
    expect(host.failures).toEqual([]);
  });

  it('pty closed and re-created at the same path (USB unplugged and back): capture resumes, seqs continue, nothing framed is lost', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const { c, host } = start(outbox, p.port);
    await c.start();
    const before = Array.from({ length: 50 }, (_, i) => `PRE-${i}`);
    const framed = before.map((s) => `${s}\r`).join('');
    // The last scan's end never comes: the cable is pulled mid-scan.
    await p.write(framed + 'HALF-SC');
    // Every byte read by the collector, the scans not necessarily stored yet: then the port vanishes.
    await waitFor('all bytes read', () => counters(c).bytes === framed.length + 7, 15_000);
    await p.close();
    await waitFor('the collector saw the port go', () => counters(c).port_open === false && counters(c).disconnects === 1, 15_000);
    expect(counters(c).partial_discarded).toBe(1);
    await waitFor('reopen attempts while the port is away', () => Number(counters(c).open_failures) >= 2, 15_000);
    expect(String(counters(c).last_open_error)).toMatch(/no such file/i);

    await p.open();
    await waitFor('the port open again', () => counters(c).port_open === true, 15_000);
    expect(counters(c).reopens).toBe(1);
    await p.write('POST-1\rPOST-2\r');
    const got = await waitScans(outbox, 52);
    expect(got.map((r) => r.data.barcode)).toEqual([...before, 'POST-1', 'POST-2']);
    expect(got.map((r) => r.data.seq)).toEqual(Array.from({ length: 52 }, (_, i) => i + 1));
    expect(new Set(got.map((r) => r.id)).size).toBe(52);
    expect(host.failures).toEqual([]);
  });

  it('port missing at start: the collector starts, keeps retrying, and captures once the port appears', async () => {
    const outbox = files.open();
    const p = pair();
    const { c, host } = start(outbox, p.port);
    await c.start(); // not a failed start: the supervisor would only retry what the collector retries itself
    expect(counters(c).port_open).toBe(false);
    await waitFor('several failed opens', () => Number(counters(c).open_failures) >= 3, 15_000);
    expect(String(counters(c).last_open_error)).toMatch(/no such file/i);
    expect(host.failures).toEqual([]);

    await p.open();
    await waitFor('the port open', () => counters(c).port_open === true, 15_000);
    expect(counters(c).reopens).toBe(0); // the first open, not a reopen
    await p.write('FIRST\r');
    const got = await waitScans(outbox, 1);
    expect(got.map((r) => [r.data.barcode, r.data.seq])).toEqual([['FIRST', 1]]);
  });

  it('an outbox that cannot store (disk fault) fails the collector once, for the supervisor to restart it', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const { c, host } = start(outbox, p.port);
    await c.start();
    // Fault injection from a second connection: storing the device's sequence fails.
    const db = new Database(files.dbPath());
    db.exec("CREATE TRIGGER no_checkpoints BEFORE INSERT ON checkpoints BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END");
    try {
      await p.write('F1\rF2\rF3\r');
      await waitFor('the failure reported', () => host.failures.length > 0, 15_000);
      await c.stop();
      expect(host.failures).toHaveLength(1);
      expect(String((host.failures[0] as Error).message)).toMatch(/injected disk fault/);
      expect(counters(c).lost).toBe(3);
      expect(scans(outbox)).toEqual([]);
    } finally {
      db.close();
    }
  });

  it('continues the per-device sequence across a collector restart', async () => {
    const outbox = files.open();
    const p = pair();
    await p.open();
    const first = start(outbox, p.port);
    await first.c.start();
    await p.write('X1\rX2\r');
    await waitScans(outbox, 2);
    await first.c.stop();
    collectors = collectors.filter((x) => x.c !== first.c);
    const second = start(outbox, p.port);
    await second.c.start();
    await p.write('X3\r');
    const got = await waitScans(outbox, 3);
    expect(got.map((r) => r.data.seq)).toEqual([1, 2, 3]);
  });

  it('back-pressure: with the outbox full under block, reading pauses (the bytes back up in the port) and resumes; nothing is lost', async () => {
    const outbox = files.open({ capPolicy: 'block', maxEvents: 10 });
    const p = pair();
    await p.open();
    const { c, host } = start(outbox, p.port);
    await c.start();
    // More than the queue's high-water mark (2 000 scans), the port's 64 KiB read buffer and the ptys' and socat's buffers together.
    const n = 30_000;
    const codes = Array.from({ length: n }, (_, i) => `SKU-${String(i).padStart(8, '0')}`);
    const body = codes.map((s) => `${s}\r`).join('');
    const writing = p.write(body);
    // Nothing is acked yet: the outbox stays full, the queue passes its high-water mark and the
    // collector stops reading. The bytes then pile up in the port's own buffer (it stops reading from
    // the OS at 64 KiB), which never happens while the collector reads.
    await waitFor('reading paused', () => counters(c).paused === true, 15_000);
    await waitFor("the port's read buffer full", () => Number(counters(c).read_buffered) >= 64 * 1024, 15_000);
    const read = Number(counters(c).bytes);
    expect(read).toBeLessThan(body.length);
    expect(Number(counters(c).backlog)).toBeLessThan(n);

    // Play the relay: take what is pending and ack it, until every scan is in.
    const delivered: ScanRec[] = [];
    await waitFor(
      'every scan delivered',
      () => {
        const last = outbox.lastSeq('dock-3');
        const acked = outbox.ackedSeq('dock-3');
        if (last > acked) {
          delivered.push(...outbox.readPending('dock-3', acked, 1_000_000).map((r) => JSON.parse(r.payload) as ScanRec));
          outbox.ack('dock-3', last);
        }
        return delivered.length >= n;
      },
      30_000,
      5,
    );
    await writing;
    expect(delivered.map((r) => r.data.barcode)).toEqual(codes);
    expect(delivered.map((r) => r.data.seq)).toEqual(codes.map((_, i) => i + 1));
    expect(counters(c)).toMatchObject({ paused: false, bytes: body.length, lost: 0 });
    expect(Number(counters(c).pauses)).toBeGreaterThanOrEqual(1);
    expect(host.writer.stats().waits).toBeGreaterThan(0);
    expect(host.failures).toEqual([]);
  });
});

describe('scanner-serial config', () => {
  function loadError(collector: string): string {
    const p = join(files.dir, 'agent.yaml');
    writeFileSync(p, `site: wh-1\nagent: a-1\ndata_dir: ./data\ntransport:\n  url: mqtt://127.0.0.1:1883\ncollectors:\n${collector}`);
    try {
      loadAgentConfig(p, { env: {} });
    } catch (err) {
      if (isErpEdgeError(err, 'ERP_CONFIG_INVALID')) return err.message;
      throw err;
    }
    throw new Error('config was accepted');
  }

  it('has the defaults of a common scanner (9600 8N1, CR, no flow control, device = name)', () => {
    const cfg = scannerSerialSchema.parse({ type: 'scanner-serial', name: 'dock-3', path: '/dev/ttyUSB0' });
    expect(cfg).toMatchObject({ baud_rate: 9600, data_bits: 8, stop_bits: 1, parity: 'none', rts_cts: false, framing: { terminator: 'cr' } });
    expect(cfg.device).toBeUndefined();
  });

  it('names the key that is wrong', () => {
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n    path: /dev/ttyUSB0\n    parity: sometimes\n')).toMatch(/collectors\[0\]\.parity/);
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n    path: COM3\n    data_bits: 9\n')).toMatch(/collectors\[0\]\.data_bits/);
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n    path: COM3\n    stop_bits: 3\n')).toMatch(/collectors\[0\]\.stop_bits/);
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n')).toMatch(/collectors\[0\]\.path/);
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n    path: COM3\n    device: a/b\n')).toMatch(/collectors\[0\]\.device/);
    expect(loadError('  - type: scanner-serial\n    name: dock-3\n    path: COM3\n    reconnect: {initial: 1m, max: 1s}\n')).toMatch(/collectors\[0\]\.reconnect/);
  });

  it('validate accepts the config while serialport cannot be loaded (the native binding loads at start only)', () => {
    const p = join(files.dir, 'agent.yaml');
    writeFileSync(p, 'site: wh-1\nagent: a-1\ndata_dir: ./data\ntransport:\n  url: mqtt://127.0.0.1:1\ncollectors:\n  - type: scanner-serial\n    name: dock-3\n    path: /dev/ttyUSB0\n');
    const breakHook = pathToFileURL(join(import.meta.dirname, '../../../fixtures/break-modules.mjs')).href;
    const r = runCli('edge-agent', ['validate', '--config', p], { ERP_EDGE_TEST_BREAK_MODULES: 'serialport,@serialport/bindings-cpp' }, ['--import', breakHook]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^OK /);
  });

  it('loads COM3 on any platform: validate reads the schema only', () => {
    const p = join(files.dir, 'agent.yaml');
    writeFileSync(p, 'site: wh-1\nagent: a-1\ndata_dir: ./data\ntransport:\n  url: mqtt://127.0.0.1:1883\ncollectors:\n  - type: scanner-serial\n    name: dock-3\n    path: COM3\n    baud_rate: 115200\n    parity: mark\n    stop_bits: 1.5\n');
    const cfg = loadAgentConfig(p, { env: {} });
    expect(cfg.collectors[0]).toMatchObject({ type: 'scanner-serial', path: 'COM3', baud_rate: 115200, parity: 'mark', stop_bits: 1.5 });
  });
});
