import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { collectorConfigSchema } from '../../../../agent/collectors/registry.js';
import { scannerTcpSchema, type ScannerTcpConfig } from '../../../../agent/collectors/scanner/schema.js';
import { ScannerTcpCollector } from '../../../../agent/collectors/scanner/tcp.js';
import type { Outbox, OutboxOptions } from '../../../../agent/outbox/outbox.js';
import { isErpEdgeError } from '../../../../common/errors.js';
import { createLogger } from '../../../../common/logger.js';
import { wireRecordV2 } from '../../../../common/wire-v2.js';
import { testHost, type TestHost } from '../../../helpers/host.js';
import { freePort, waitFor } from '../../../helpers/net.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';
import { dialScanner, prng, scanLines, writeSplit } from '../../../helpers/scan-senders.js';

const files = useOutboxFiles('scanner-tcp-test-', { synchronous: 'NORMAL' });
const STREAM = 'dock';

interface ScanData {
  device: string;
  seq: number;
  barcode: string;
  raw: string;
  valid: boolean;
}

interface Running {
  o: Outbox;
  h: TestHost;
  c: ScannerTcpCollector;
  logs: { msg: string; [k: string]: unknown }[];
  counters(): Record<string, number | string | boolean>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanups.splice(0).reverse()) await f();
});

async function run(config: Record<string, unknown>, opts: { outbox?: Partial<OutboxOptions>; highWater?: number } = {}): Promise<Running> {
  const o = files.open(opts.outbox);
  const cfg: ScannerTcpConfig = scannerTcpSchema.parse({ type: 'scanner-tcp', name: STREAM, host: '127.0.0.1', ...config });
  const logs: Running['logs'] = [];
  const logger = createLogger({ level: 'info', destination: { write: (s: string) => void logs.push(JSON.parse(s) as Running['logs'][number]) } });
  const h = testHost(o, cfg, files.dir, { logger });
  const c = new ScannerTcpCollector(cfg, h.ctx, { highWater: opts.highWater });
  await c.start();
  cleanups.push(async () => {
    h.abort.abort();
    await c.stop();
  });
  return { o, h, c, logs, counters: () => c.stats().counters! };
}

async function dial(port: number): Promise<Socket> {
  const s = await dialScanner(port);
  s.on('error', () => {});
  cleanups.push(() => void s.destroy());
  return s;
}

function stored(o: Outbox): ScanData[] {
  return o.readPending(STREAM, 0, Number.MAX_SAFE_INTEGER).map((r) => wireRecordV2.parse(JSON.parse(r.payload)).data as ScanData);
}

const ofDevice = (o: Outbox, device: string) => stored(o).filter((s) => s.device === device);


describe('scanner-tcp: listen', () => {
  it('scans split and coalesced across reads arrive whole, per device in order; device from prefix, address, local port', async () => {
    const [p1, p2] = [await freePort(), await freePort()];
    const r = await run({ port: [p1, p2], devices: [{ id: 'DOCK2', local_port: p2 }], device_prefix: { separator: '|' }, framing: { terminator: 'crlf' } });
    const rand = prng(7);
    const a = await dial(p1); // by address: 127.0.0.1
    const b = await dial(p2); // by local port: DOCK2
    const codesA = Array.from({ length: 300 }, (_, i) => `A${i}`);
    const codesB = Array.from({ length: 300 }, (_, i) => `B${i}`);
    const codesP = Array.from({ length: 300 }, (_, i) => (i % 2 ? `GW1|P${i}` : `GW2|P${i}`));
    await Promise.all([writeSplit(a, scanLines(codesA, '\r\n'), rand), writeSplit(b, scanLines([...codesB, ...codesP], '\r\n'), rand)]);
    await waitFor('all scans stored', () => stored(r.o).length === 900);
    expect(ofDevice(r.o, '127.0.0.1').map((s) => s.barcode)).toEqual(codesA);
    expect(ofDevice(r.o, 'DOCK2').map((s) => s.barcode)).toEqual(codesB);
    expect(ofDevice(r.o, 'GW1').map((s) => s.barcode)).toEqual(codesP.filter((_, i) => i % 2).map((c) => c.slice(4)));
    for (const d of ['127.0.0.1', 'DOCK2', 'GW1', 'GW2']) expect(ofDevice(r.o, d).map((s) => s.seq)).toEqual(ofDevice(r.o, d).map((_, i) => i + 1));
    expect(r.counters()).toMatchObject({ connections: 2, scans: 900, devices: 4, oversize: 0, partial_discarded: 0 });
  });

  it('refuses connections over max_connections and counts them; the others go on', async () => {
    const port = await freePort();
    const r = await run({ port, max_connections: 1 });
    const first = await dial(port);
    const second = await dial(port);
    await once(second, 'close');
    first.write('OK1\r');
    await waitFor('scan stored', () => stored(r.o).length === 1);
    expect(r.counters()).toMatchObject({ connections: 1, connections_refused: 1 });
  });

  it('a port in use is a failed start naming the setting', async () => {
    const port = await freePort();
    const blocker = createServer();
    await new Promise<void>((res) => blocker.listen(port, '127.0.0.1', res));
    cleanups.push(() => new Promise<void>((res) => blocker.close(() => res())));
    const err = await run({ port }).catch((e: unknown) => e);
    expect(isErpEdgeError(err, 'ERP_PORT_IN_USE')).toBe(true);
  });
});

describe('scanner-tcp: garbage', () => {
  it('noise, a 1 MB line, a half-open and a half-closed connection, a client that never ends a line: counted, logged once each, the collector stays up and a good device loses nothing', async () => {
    const ports = await Promise.all(Array.from({ length: 6 }, () => freePort()));
    const [pNoise, pBig, pSilent, pHalfClosed, pEndless, pGood] = ports;
    const devices = [
      { id: 'NOISE', local_port: pNoise },
      { id: 'BIG', local_port: pBig },
      { id: 'SILENT', local_port: pSilent },
      { id: 'HALFCLOSED', local_port: pHalfClosed },
      { id: 'ENDLESS', local_port: pEndless },
      { id: 'GOOD', local_port: pGood },
    ];
    const MAX = 1_024;
    const r = await run({ port: ports, devices, idle_timeout: '1s', framing: { terminator: 'cr', max_length: MAX } });
    const rand = prng(42);

    // The good device sends throughout, alongside the others.
    const good = await dial(pGood!);
    const goodCodes = Array.from({ length: 2_000 }, (_, i) => `0101234567890128${String(i).padStart(6, '0')}`);
    const goodSent = writeSplit(good, scanLines(goodCodes), rand).then(() => good.end());

    // Binary noise: whatever frames it holds are scans (raw kept), never a crash.
    const noise = Buffer.concat([Buffer.from(Array.from({ length: 64 * 1024 }, () => Math.floor(rand() * 256))), Buffer.from('\r')]);
    const noiseSock = await dial(pNoise!);
    const noiseSent = writeSplit(noiseSock, noise, rand, 4_096).then(() => noiseSock.end());

    // A 1 MB line between two good scans on the same connection.
    const big = await dial(pBig!);
    const bigSent = writeSplit(big, Buffer.concat([Buffer.from('B1\r'), Buffer.alloc(1_048_576, 0x41), Buffer.from('\rB2\r')]), rand, 16_384).then(() => big.end());

    // Half-open: a scan, then half a scan, then nothing at all (as if the device lost power): only the idle timeout finds it.
    const silent = await dial(pSilent!);
    silent.write('S1\rS2-half');
    // Half-closed: a scan, half a scan, then FIN.
    const halfClosed = await dial(pHalfClosed!);
    halfClosed.end('H1\rH2-half');
    // Never ends a line: 300 KB without a terminator, then silence.
    const endless = await dial(pEndless!);
    await writeSplit(endless, Buffer.alloc(300 * 1024, 0x58), rand, 8_192);

    // These three close (FIN) as soon as they are done: only the two silent ones meet the idle timeout.
    await Promise.all([goodSent, noiseSent, bigSent]);
    const sentBytes = 22 * goodCodes.length + goodCodes.length + noise.length + 1_048_576 + 7 + 10 + 10 + 300 * 1024;
    await waitFor('every byte read', () => r.counters().bytes_read === sentBytes);
    // Bytes held for unfinished frames stay bounded by max_length per connection (SILENT's 7, ENDLESS's tail).
    expect(r.c.heldBytes()).toBeLessThanOrEqual(2 * MAX);

    await waitFor('silent connections closed by idle_timeout', () => r.counters().idle_closed === 2 && r.counters().connections === 0);
    await waitFor('good scans stored', () => ofDevice(r.o, 'GOOD').length === goodCodes.length);

    // The good device: every scan, in order, numbered 1..n.
    const goodStored = ofDevice(r.o, 'GOOD');
    expect(goodStored.map((s) => s.barcode)).toEqual(goodCodes);
    expect(goodStored.map((s) => s.seq)).toEqual(goodCodes.map((_, i) => i + 1));
    // Noise: exactly the frames it holds, raw bytes kept.
    expect(ofDevice(r.o, 'NOISE').map((s) => s.raw)).toEqual(referenceFrames(noise, MAX).map((f) => f.toString('base64')));
    // The 1 MB line is dropped; the connection stayed and the scan after it arrived.
    expect(ofDevice(r.o, 'BIG').map((s) => s.barcode)).toEqual(['B1', 'B2']);
    expect(ofDevice(r.o, 'SILENT').map((s) => s.barcode)).toEqual(['S1']);
    expect(ofDevice(r.o, 'HALFCLOSED').map((s) => s.barcode)).toEqual(['H1']);
    expect(ofDevice(r.o, 'ENDLESS')).toEqual([]);

    const counters = r.counters();
    expect(counters).toMatchObject({ oversize: 1 + referenceOversize(noise, MAX), partial_discarded: 3, idle_closed: 2 });
    expect(r.h.failures).toEqual([]);
    // Logged, once per kind and device within the throttle interval.
    const warned = (msg: string) => r.logs.filter((l) => l.msg.startsWith(msg)).map((l) => l.device);
    expect(warned('scan longer than framing.max_length')).toContain('BIG');
    expect(warned('connection closed in the middle of a scan').sort()).toEqual(['ENDLESS', 'HALFCLOSED', 'SILENT']);
    expect(warned('silent connection closed').sort()).toEqual(['ENDLESS', 'SILENT']);

    // Still up: a new device is heard.
    const late = await dial(pGood!);
    late.write('LATE\r');
    await waitFor('late scan stored', () => ofDevice(r.o, 'GOOD').length === goodCodes.length + 1);
  });
});

/** What the noise should frame to, worked out independently of the framer: CR-separated, an LF after a CR dropped, empties skipped. */
function referenceFrames(noise: Buffer, max: number): Buffer[] {
  return splitCr(noise).filter((f) => f.length > 0 && f.length <= max);
}

function referenceOversize(noise: Buffer, max: number): number {
  return splitCr(noise).filter((f) => f.length > max).length;
}

function splitCr(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0x0d) continue;
    out.push(bytes.subarray(start, i));
    start = bytes[i + 1] === 0x0a ? i + 2 : i + 1;
    if (bytes[i + 1] === 0x0a) i++;
  }
  // The noise ends with CR: nothing is left over.
  return out;
}

describe('scanner-tcp: back-pressure', () => {
  it('with the outbox full under block the connection is paused (the sender cannot write on) and nothing is lost once acks make room', async () => {
    const port = await freePort();
    const r = await run({ port, framing: { max_length: 4_096 } }, { outbox: { capPolicy: 'block', maxEvents: 50 }, highWater: 20 });
    const sender = await dial(port);
    const N = 2_000;
    const codes = Array.from({ length: N }, (_, i) => `${String(i).padStart(8, '0')}${'x'.repeat(2_000)}`);
    const data = scanLines(codes);
    sender.write(data);

    await waitFor('connection paused', () => r.counters().connections_paused === 1);
    // Paused: the collector has not read what the sender wrote, the sender holds the rest.
    expect(Number(r.counters().bytes_read)).toBeLessThan(data.length);
    expect(sender.writableLength).toBeGreaterThan(0);
    expect(stored(r.o).length).toBeLessThanOrEqual(50);

    // The forwarder's part: acks make room, the connection resumes, everything arrives.
    const seen: ScanData[] = [];
    let after = 0;
    while (seen.length < N) {
      const rows = r.o.readPending(STREAM, after, Number.MAX_SAFE_INTEGER);
      for (const row of rows) seen.push(wireRecordV2.parse(JSON.parse(row.payload)).data as ScanData);
      if (rows.length > 0) {
        after = rows[rows.length - 1]!.seq;
        r.o.ack(STREAM, after);
      }
      await new Promise((res) => setImmediate(res));
    }
    expect(seen.map((s) => s.barcode).join()).toBe(codes.join());
    expect(seen.map((s) => s.seq)).toEqual(codes.map((_, i) => i + 1));
    expect(r.counters()).toMatchObject({ connections_paused: 0, backlog: 0, scans: N });
    expect(r.h.failures).toEqual([]);
  });

  it('an append that fails for another reason than stopping fails the collector', async () => {
    const port = await freePort();
    const r = await run({ port });
    r.o.close();
    files.untrack(r.o);
    const s = await dial(port);
    s.write('X1\r');
    await waitFor('collector failed', () => r.h.failures.length === 1);
    // The closed database's own error: what matters is that it reached the supervisor.
    expect(r.h.failures[0]).toBeInstanceOf(Error);
  });
});

describe('scanner-tcp: connect', () => {
  it('connects to each device, reconnects with back-off after a failed attempt and after the device drops', async () => {
    const port = await freePort();
    const r = await run({ mode: 'connect', host: undefined, devices: [{ id: 'GW1', host: '127.0.0.1', port }], reconnect: { initial: '20ms', max: '100ms' } });
    await waitFor('a failed attempt', () => Number(r.counters().connect_failures) >= 1);

    // The device comes up: it sends two scans and drops the connection, then one more on the next.
    let n = 0;
    const sockets: Socket[] = [];
    const device: Server = createServer((s) => {
      sockets.push(s);
      n++;
      if (n === 1) s.end('G1\rG2\rG3-cut');
      else s.write('G3\r');
    });
    await new Promise<void>((res) => device.listen(port, '127.0.0.1', res));
    cleanups.push(
      () =>
        new Promise<void>((res) => {
          device.close(() => res());
          for (const s of sockets) s.destroy();
        }),
    );
    await waitFor('three scans', () => ofDevice(r.o, 'GW1').length === 3);
    expect(ofDevice(r.o, 'GW1').map((s) => [s.barcode, s.seq])).toEqual([
      ['G1', 1],
      ['G2', 2],
      ['G3', 3],
    ]);
    expect(r.counters()).toMatchObject({ partial_discarded: 1, connections: 1 });
    expect(r.logs.filter((l) => l.msg.startsWith('cannot connect to scanner')).length).toBe(1);
  });
});

describe('scanner-tcp config', () => {
  const parse = (c: Record<string, unknown>) => scannerTcpSchema.safeParse({ type: 'scanner-tcp', name: 'dock', ...c });

  it('is a registered kind with its defaults', () => {
    const c = collectorConfigSchema.parse({ type: 'scanner-tcp', name: 'dock', port: 9100 }) as ScannerTcpConfig;
    expect(c).toMatchObject({ mode: 'listen', host: '0.0.0.0', framing: { terminator: 'cr', max_length: 4_096 }, idle_timeout: 600_000, reconnect: { initial: 1_000, max: 30_000 } });
  });

  it('checks the devices against the mode', () => {
    expect(parse({}).success).toBe(false);
    expect(parse({ port: 9100, devices: [{ id: 'A', host: 'x', port: 1 }] }).success).toBe(false);
    expect(parse({ port: 9100, devices: [{ id: 'A', local_port: 9101 }] }).success).toBe(false);
    expect(parse({ port: [9100, 9101], devices: [{ id: 'A', local_port: 9101 }, { id: 'B', address: '10.0.0.9' }] }).success).toBe(true);
    expect(parse({ port: 9100, devices: [{ id: 'A', address: 'scanner-1' }] }).success).toBe(false);
    expect(parse({ mode: 'connect' }).success).toBe(false);
    expect(parse({ mode: 'connect', devices: [{ id: 'A', host: 'gw', port: 4001 }, { id: 'A', host: 'gw', port: 4002 }] }).success).toBe(false);
    expect(parse({ mode: 'connect', devices: [{ id: 'A', host: 'gw', port: 4001 }] }).success).toBe(true);
  });
});
