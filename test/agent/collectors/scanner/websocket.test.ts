import { createServer } from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { WebSocket } from 'ws';
import { scannerWsSchema, type ScannerWsConfig } from '../../../../agent/collectors/scanner/schema.js';
import { ScannerWsCollector } from '../../../../agent/collectors/scanner/websocket.js';
import type { Writer } from '../../../../agent/host/writer.js';
import type { Outbox } from '../../../../agent/outbox/outbox.js';
import { parseConfigText } from '../../../../common/config-file.js';
import { createLogger } from '../../../../common/logger.js';
import { collectorConfigSchema } from '../../../../agent/collectors/registry.js';
import { isErpEdgeError } from '../../../../common/errors.js';
import { testHost, type TestHost } from '../../../helpers/host.js';
import { useOutboxFiles } from '../../../helpers/outbox-files.js';
import { fileRecords, fileTable } from '../../../helpers/outbox-file.js';
import { freePort, waitFor } from '../../../helpers/net.js';

const STREAM = 'handhelds';
const SOURCE = `scanner-ws:${STREAM}`;
const TOKENS = { 'hh-1': 'token-of-handheld-one-0001', 'hh-2': 'token-of-handheld-two-0002', 'hh-3': 'token-of-handheld-three-003' } as const;
type Device = keyof typeof TOKENS;

const files = useOutboxFiles('scanner-ws-test-', { synchronous: 'NORMAL' });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Running {
  collector: ScannerWsCollector;
  host: TestHost;
  outbox: Outbox;
  url: string;
  lines: string[];
}

function config(extra: Record<string, unknown> = {}): ScannerWsConfig {
  return scannerWsSchema.parse({
    type: 'scanner-ws',
    name: STREAM,
    host: '127.0.0.1',
    port: 0,
    devices: Object.entries(TOKENS).map(([id, token]) => ({ id, token })),
    ...extra,
  });
}

async function start(opts: { outbox?: Outbox; cfg?: Record<string, unknown>; writer?: (w: Writer) => Writer } = {}): Promise<Running> {
  const outbox = opts.outbox ?? files.open();
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  const cfg = config(opts.cfg);
  const host = testHost(outbox, cfg, files.dir, { logger });
  const collector = new ScannerWsCollector(cfg, opts.writer ? { ...host.ctx, writer: opts.writer(host.ctx.writer) } : host.ctx);
  await collector.start();
  cleanups.push(async () => {
    host.abort.abort();
    await collector.stop();
  });
  return { collector, host, outbox, url: collector.url, lines };
}

/** A handheld: an open WebSocket whose replies are read in order. */
class Handheld {
  private readonly replies: unknown[] = [];
  private waiters: ((r: unknown) => void)[] = [];
  /** Called with each reply as it arrives, before anything else runs. */
  onReply: ((r: unknown) => void) | undefined;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const r: unknown = JSON.parse(String(data));
      this.onReply?.(r);
      const w = this.waiters.shift();
      if (w) w(r);
      else this.replies.push(r);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  next<T = Reply>(): Promise<T> {
    if (this.replies.length > 0) return Promise.resolve(this.replies.shift() as T);
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve as (r: unknown) => void);
      this.ws.once('close', (code) => reject(new Error(`connection closed (${code}) before a reply`)));
    });
  }

  async scan(msg: unknown): Promise<Reply> {
    this.send(msg);
    return this.next();
  }
}

type Reply = { ok: true; seq: number; id?: string } | { ok: false; error: { code: string; message: string; retry_after_ms?: number }; id?: string };

/** Connects; resolves with the handheld, or rejects with the HTTP status the upgrade was refused with. */
async function connect(url: string, auth: { token?: string; via?: 'header' | 'query' } = {}, options: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<Handheld> {
  const target = auth.token !== undefined && auth.via === 'query' ? `${url}?token=${encodeURIComponent(auth.token)}` : url;
  const headers: Record<string, string> = auth.token !== undefined && auth.via !== 'query' ? { authorization: `Bearer ${auth.token}` } : {};
  const ws = new WebSocket(target, { headers, ...options });
  cleanups.push(() => ws.terminate());
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(new Handheld(ws)));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

async function refusedWith(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (err) {
    return (err as { status?: number }).status ?? -1;
  }
  throw new Error('the connection was accepted');
}

const asDevice = (url: string, device: Device, via: 'header' | 'query' = 'header') => connect(url, { token: TOKENS[device], via });

function records(_r: Running) {
  return fileRecords(files.dbPath(), STREAM).map((x) => {
    const rec = JSON.parse(x.line.startsWith('{') ? x.line : `{${x.line}`) as { id: string; source_ts: number; correlation_id: string; data: Record<string, unknown> };
    return { ...rec, seq: x.seq };
  });
}

describe('scanner-ws: config', () => {
  const yaml = (devices: string) => `- type: scanner-ws\n  name: hh\n  port: 9480\n  devices:\n${devices}`;
  const parse = (text: string, env: Record<string, string>) => parseConfigText(text, 'agent.yaml', collectorConfigSchema.array(), env);

  it('takes device tokens from the environment (${VAR}), with the defaults', () => {
    const [cfg] = parse(yaml('    - id: hh-1\n      token: ${TOKEN_HH1}\n'), { TOKEN_HH1: TOKENS['hh-1'] });
    expect(cfg).toMatchObject({ type: 'scanner-ws', host: '0.0.0.0', port: 9480, path: '/scans', devices: [{ id: 'hh-1', token: TOKENS['hh-1'] }], max_message_bytes: 65_536, ping_interval: 30_000, retry_after: 5_000 });
  });

  it('refuses a token given to two devices, a short token and a device id unfit for record ids, without printing a token', () => {
    const shortToken = 'short-tok';
    let message = '';
    try {
      parse(yaml(`    - id: hh-1\n      token: \${A}\n    - id: hh-2\n      token: \${A}\n    - id: hh 3\n      token: ${shortToken}\n`), { A: TOKENS['hh-1'] });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('the same token is given to two devices');
    expect(message).toContain('at least 16 characters');
    expect(message).toContain('letters, digits');
    expect(message).not.toContain(TOKENS['hh-1']);
    expect(message).not.toContain(shortToken);
  });
});

describe('scanner-ws: authentication at the upgrade', () => {
  it('refuses a client without a token, with a wrong token (header or query) with 401; counts and logs it without the token; writes nothing', async () => {
    const r = await start();
    const wrong = 'wrong-token-but-long-enough-123';
    expect(await refusedWith(connect(r.url))).toBe(401);
    expect(await refusedWith(connect(r.url, { token: wrong }))).toBe(401);
    expect(await refusedWith(connect(r.url, { token: wrong, via: 'query' }))).toBe(401);
    // A prefix of a real token is no token either.
    expect(await refusedWith(connect(r.url, { token: TOKENS['hh-1'].slice(0, -1) }))).toBe(401);
    expect(r.collector.stats().counters).toMatchObject({ auth_failures: 4, connections: 0, connections_total: 0 });
    const log = r.lines.join('');
    expect(log).toContain('not authenticated (401)');
    for (const secret of [wrong, TOKENS['hh-1'].slice(0, -1), TOKENS['hh-1'].slice(0, 12)]) expect(log).not.toContain(secret);
    expect(r.outbox.usage().events).toBe(0);
  });

  it('answers another path 404 and a plain HTTP request 426', async () => {
    const r = await start();
    expect(await refusedWith(connect(r.url.replace('/scans', '/other'), { token: TOKENS['hh-1'] }))).toBe(404);
    const res = await fetch(r.url.replace('ws://', 'http://'));
    expect(res.status).toBe(426);
  });

  it('accepts the token in the Authorization header and in the query; the token names the device', async () => {
    const r = await start();
    const byHeader = await asDevice(r.url, 'hh-1', 'header');
    const byQuery = await asDevice(r.url, 'hh-2', 'query');
    expect(await byHeader.scan({ barcode: 'A1', id: 'h1' })).toEqual({ ok: true, seq: 1, id: 'h1' });
    expect(await byQuery.scan({ barcode: 'B1', device: 'hh-2' })).toEqual({ ok: true, seq: 1 });
    expect(await byQuery.scan({ barcode: 'B2' })).toEqual({ ok: true, seq: 2 });
    const recs = records(r);
    expect(recs.map((x) => [x.data.device, x.data.seq, x.data.barcode, x.correlation_id])).toEqual([
      ['hh-1', 1, 'A1', 'hh-1'],
      ['hh-2', 1, 'B1', 'hh-2'],
      ['hh-2', 2, 'B2', 'hh-2'],
    ]);
    expect(recs[0]!.id).toBe(`${SOURCE}/hh-1/m/h1`);
    expect(r.collector.stats().counters).toMatchObject({ connections: 2, connections_total: 2, accepted: 3, auth_failures: 0 });
  });

  it('refuses a scan sent as another device than the token is for; the connection stays', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-1');
    const refused = await c.scan({ barcode: 'X', device: 'hh-2', id: 'spoof' });
    expect(refused).toMatchObject({ ok: false, id: 'spoof', error: { code: 'ERP_SCAN_FORBIDDEN' } });
    expect(await c.scan({ barcode: 'Y', device: 'hh-1' })).toEqual({ ok: true, seq: 1 });
    expect(records(r).map((x) => x.data.barcode)).toEqual(['Y']);
    expect(r.collector.stats().counters).toMatchObject({ device_mismatches: 1 });
  });
});

describe('scanner-ws: scans and replies', () => {
  it('acks only after the commit: when each reply arrives the outbox file already holds its record', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-3');
    const seenAtReply: boolean[] = [];
    // Read with a connection of its own, synchronously, the moment the reply is received.
    c.onReply = (reply) => {
      const id = (reply as { id: string }).id;
      seenAtReply.push(fileRecords(files.dbPath(), STREAM).some((x) => x.line.includes(JSON.stringify(`${SOURCE}/hh-3/m/${id}`))));
    };
    const N = 30;
    for (let i = 1; i <= N; i++) c.send({ barcode: `CODE-${i}`, id: `m-${i}`, ts: '2026-12-03T10:00:00+01:00', location: 'dock-2' });
    const replies = [];
    for (let i = 1; i <= N; i++) replies.push(await c.next());
    expect(replies).toEqual(Array.from({ length: N }, (_, i) => ({ ok: true, seq: i + 1, id: `m-${i + 1}` })));
    expect(seenAtReply).toEqual(Array.from({ length: N }, () => true));
    // The per-device sequence is stored with the scans (its checkpoint), so a restart continues it.
    expect(fileTable<{ value: string }>(files.dbPath(), "SELECT value FROM checkpoints WHERE collector = ? AND key = 'device:hh-3'", SOURCE)[0]?.value).toBe('30');
    const first = records(r)[0]!;
    expect(first.source_ts).toBe(Date.parse('2026-12-03T09:00:00Z'));
    expect(first.data).toMatchObject({ device: 'hh-3', seq: 1, barcode: 'CODE-1', device_ts: Date.parse('2026-12-03T09:00:00Z'), location: 'dock-2', repeat: false });
    expect(typeof first.data.received_at).toBe('number');
  });

  it('the ack waits for the append: held while the outbox write is held, sent after it committed', async () => {
    // The writer's appends wait for the test's go-ahead: an ack sent before the commit would overtake it.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let appendCalled!: () => void;
    const called = new Promise<void>((resolve) => (appendCalled = resolve));
    const r = await start({
      writer: (w) => ({
        ...w,
        append: async (...args) => {
          appendCalled();
          await held;
          return w.append(...args);
        },
      }),
    });
    cleanups.push(() => release());
    const c = await asDevice(r.url, 'hh-1');
    const order: string[] = [];
    c.onReply = (reply) => {
      const id = (reply as { id?: string }).id ?? 'invalid';
      order.push(`${id}:${fileRecords(files.dbPath(), STREAM).length}`);
    };
    c.send({ barcode: 'HELD', id: 'held' });
    await called;
    // Same connection, after the scan: answered at once (no append), while the scan's append is held.
    expect(await c.scan('not json')).toMatchObject({ ok: false, error: { code: 'ERP_SCAN_INVALID' } });
    expect(order).toEqual(['invalid:0']);
    release();
    expect(await c.next()).toEqual({ ok: true, seq: 1, id: 'held' });
    // When the ack arrived the record was in the file.
    expect(order).toEqual(['invalid:0', 'held:1']);
  });

  it('a restarted collector continues the device sequence; a retried message id becomes the same record id', async () => {
    const o = files.open();
    const r1 = await start({ outbox: o });
    const c1 = await asDevice(r1.url, 'hh-1');
    expect(await c1.scan({ barcode: 'A', id: 'same' })).toMatchObject({ ok: true, seq: 1 });
    r1.host.abort.abort();
    await r1.collector.stop();
    const r2 = await start({ outbox: o });
    const c2 = await asDevice(r2.url, 'hh-1');
    expect(await c2.scan({ barcode: 'A', id: 'same' })).toEqual({ ok: true, seq: 2, id: 'same' });
    expect(records(r2).map((x) => x.id)).toEqual([`${SOURCE}/hh-1/m/same`, `${SOURCE}/hh-1/m/same`]);
  });

  it('answers invalid JSON and invalid fields with ERP_SCAN_INVALID (naming the message id), keeps the connection, writes nothing for them', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-1');
    expect(await c.scan('{"barcode": "A1"')).toMatchObject({ ok: false, error: { code: 'ERP_SCAN_INVALID' } });
    expect(await c.scan('42')).toMatchObject({ ok: false, error: { code: 'ERP_SCAN_INVALID' } });
    expect(await c.scan({ id: 'no-code' })).toMatchObject({ ok: false, id: 'no-code', error: { code: 'ERP_SCAN_INVALID', message: expect.stringContaining('barcode') } });
    expect(await c.scan({ barcode: 'A', ts: '2026-12-03 10:00', id: 'zoneless' })).toMatchObject({ ok: false, id: 'zoneless', error: { code: 'ERP_SCAN_INVALID', message: expect.stringContaining('ts') } });
    expect(await c.scan({ barcode: 'A', timestamp: 1, id: 'typo' })).toMatchObject({ ok: false, id: 'typo', error: { code: 'ERP_SCAN_INVALID', message: expect.stringContaining('timestamp') } });
    expect(await c.scan({ barcode: 'A', id: 'x'.repeat(129) })).toMatchObject({ ok: false, error: { code: 'ERP_SCAN_INVALID' } });
    expect(await c.scan({ barcode: 'OK', ts: 1_764_756_000_000 })).toEqual({ ok: true, seq: 1 });
    expect(records(r).map((x) => [x.data.barcode, x.source_ts])).toEqual([['OK', 1_764_756_000_000]]);
    expect(r.collector.stats().counters).toMatchObject({ invalid_messages: 6, accepted: 1, messages: 7 });
    expect(r.lines.join('')).toContain('not a valid scan');
  });

  it('records a code that is not valid GS1 (flagged by the parser, never refused)', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-1');
    // ]C1 says GS1-128; the GTIN's check digit is wrong (…31 instead of …38).
    expect(await c.scan({ barcode: ']C10109501101020931' })).toEqual({ ok: true, seq: 1 });
    const rec = records(r)[0]!;
    expect(rec.data).toMatchObject({ symbology: ']C1', barcode: '0109501101020931' });
    expect(typeof rec.data.valid).toBe('boolean');
  });

  it('takes an array of scans as one message and answers with an array of replies in its order', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-2');
    const replies = await c.scan([{ barcode: 'A', id: 'a' }, { barcode: 'B', device: 'hh-1', id: 'b' }, { barcode: 'C', id: 'c' }]);
    expect(replies).toEqual([
      { ok: true, seq: 1, id: 'a' },
      { ok: false, id: 'b', error: expect.objectContaining({ code: 'ERP_SCAN_FORBIDDEN' }) },
      { ok: true, seq: 2, id: 'c' },
    ]);
    expect(await c.scan([])).toMatchObject({ ok: false, error: { code: 'ERP_SCAN_INVALID' } });
    expect(records(r).map((x) => x.data.barcode)).toEqual(['A', 'C']);
  });

  it('closes a connection whose message is over max_message_bytes (1009); other clients go on', async () => {
    const r = await start({ cfg: { max_message_bytes: 1_024 } });
    const big = await asDevice(r.url, 'hh-1');
    const other = await asDevice(r.url, 'hh-2');
    const closed = once(big.ws, 'close');
    big.send({ barcode: 'x'.repeat(2_000) });
    expect((await closed)[0]).toBe(1009);
    expect(await other.scan({ barcode: 'fine' })).toEqual({ ok: true, seq: 1 });
    expect(r.collector.stats().counters).toMatchObject({ too_large: 1, accepted: 1 });
  });
});

describe('scanner-ws: back-pressure (outbox full under block)', () => {
  it('refuses with ERP_OUTBOX_FULL and retry_after_ms, writes nothing; accepts the same scan once there is room', async () => {
    const o = files.open({ capPolicy: 'block', maxEvents: 3, replayWindowMs: 3_600_000 });
    const r = await start({ outbox: o, cfg: { retry_after: '7s' } });
    const c = await asDevice(r.url, 'hh-1');
    for (let i = 1; i <= 3; i++) expect(await c.scan({ barcode: `F${i}`, id: `f${i}` })).toMatchObject({ ok: true, seq: i });
    expect(o.isFull()).toBe(true);
    const refused = await c.scan({ barcode: 'F4', id: 'f4' });
    expect(refused).toEqual({ ok: false, id: 'f4', error: { code: 'ERP_OUTBOX_FULL', message: expect.any(String), retry_after_ms: 7_000 } });
    // Nothing of it was written, and its sequence number was not used up.
    expect(records(r).map((x) => x.data.barcode)).toEqual(['F1', 'F2', 'F3']);
    expect(fileTable<{ value: string }>(files.dbPath(), "SELECT value FROM checkpoints WHERE collector = ? AND key = 'device:hh-1'", SOURCE)[0]?.value).toBe('3');
    expect(r.collector.stats().counters).toMatchObject({ full_refusals: 1, accepted: 3 });
    expect(r.host.writer.stats().full_refusals).toBe(1);
    // The connection stays; room again (the relay acked): the retry goes in.
    o.ack(STREAM, 3);
    expect(await c.scan({ barcode: 'F4', id: 'f4' })).toEqual({ ok: true, seq: 4, id: 'f4' });
    expect(records(r).map((x) => x.data.barcode)).toContain('F4');
  });

  it('stops reading the sockets while scans wait for a slow outbox, and reads on once it caught up; every scan acked', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const r = await start({
      writer: (w) => ({
        ...w,
        append: async (...args) => {
          await held;
          return w.append(...args);
        },
      }),
    });
    cleanups.push(() => release());
    const c = await asDevice(r.url, 'hh-1');
    // Far more than the queue's high-water mark (2 000 scans) behind the held first append (at most
    // 1 000), and more than the socket delivers at once (~250 KB).
    const N = 8_000;
    for (let i = 1; i <= N; i++) c.send({ barcode: `P${i}`, id: `p${i}` });
    const other = await asDevice(r.url, 'hh-2');
    await waitFor('reading paused', () => r.collector.stats().counters?.connections_paused === 2, 20_000, 10);
    expect(r.collector.stats().counters?.messages).toBeLessThan(N);
    release();
    const replies: Reply[] = [];
    for (let i = 1; i <= N; i++) replies.push(await c.next());
    expect(replies.every((x, i) => x.ok && x.id === `p${i + 1}` && x.seq === i + 1)).toBe(true);
    expect(r.collector.stats().counters).toMatchObject({ connections_paused: 0, messages: N, accepted: N });
    expect(await other.scan({ barcode: 'after' })).toEqual({ ok: true, seq: 1 });
    expect(records(r)).toHaveLength(N + 1);
  });
});

describe('scanner-ws: many clients, keep-alive, stop, port', () => {
  it('20 clients on 3 devices send 50 scans each at once: every scan acked once, stored once, in each connection order, device sequences without holes', async () => {
    const r = await start();
    const devices = Object.keys(TOKENS) as Device[];
    const clients = await Promise.all(Array.from({ length: 20 }, (_, i) => asDevice(r.url, devices[i % 3]!, i % 2 ? 'query' : 'header')));
    expect(r.collector.stats().counters).toMatchObject({ connections: 20 });
    const PER = 50;
    const all = await Promise.all(
      clients.map(async (c, ci) => {
        for (let k = 0; k < PER; k++) c.send({ barcode: `C${ci}-${k}`, id: `c${ci}-${k}` });
        const out: Reply[] = [];
        for (let k = 0; k < PER; k++) out.push(await c.next());
        return out;
      }),
    );
    expect(all.flat().every((x) => x.ok)).toBe(true);
    const recs = records(r);
    expect(recs).toHaveLength(20 * PER);
    expect(new Set(recs.map((x) => x.id)).size).toBe(20 * PER);
    for (const d of devices) {
      const seqs = recs.filter((x) => x.data.device === d).map((x) => x.data.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    }
    clients.forEach((_, ci) => {
      const mine = recs.filter((x) => String(x.data.barcode).startsWith(`C${ci}-`)).map((x) => x.data.barcode);
      expect(mine).toEqual(Array.from({ length: PER }, (_, k) => `C${ci}-${k}`));
    });
    // Each ack carries the sequence its record got.
    const seqById = new Map(recs.map((x) => [x.id.split('/m/')[1]!, x.data.seq]));
    all.forEach((replies) => replies.forEach((x) => expect(x.ok && x.seq).toBe(seqById.get(x.id!))));
  });

  it('drops a client that does not answer pings; keeps one that does', async () => {
    const r = await start({ cfg: { ping_interval: '100ms' } });
    const mute = await connect(r.url, { token: TOKENS['hh-2'] }, { autoPong: false });
    const live = await asDevice(r.url, 'hh-3');
    await once(mute.ws, 'close');
    expect(r.collector.stats().counters).toMatchObject({ dead_clients: 1 });
    expect(live.ws.readyState).toBe(WebSocket.OPEN);
    expect(await live.scan({ barcode: 'still here' })).toEqual({ ok: true, seq: 1 });
  });

  it('stop() closes clients with 1001 and refuses new connections', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-1');
    expect(await c.scan({ barcode: 'before' })).toEqual({ ok: true, seq: 1 });
    const closed = once(c.ws, 'close');
    r.host.abort.abort();
    await r.collector.stop();
    expect((await closed)[0]).toBe(1001);
    await expect(asDevice(r.url, 'hh-1')).rejects.toThrow();
  });

  it('stop() answers a scan whose append is in flight before it closes the connection (the stopped instance writes nothing: retry)', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let appendCalled!: () => void;
    const called = new Promise<void>((resolve) => (appendCalled = resolve));
    const r = await start({
      writer: (w) => ({
        ...w,
        append: async (...args) => {
          appendCalled();
          await held;
          return w.append(...args);
        },
      }),
    });
    cleanups.push(() => release());
    const c = await asDevice(r.url, 'hh-1');
    const events: string[] = [];
    c.onReply = (reply) => events.push(JSON.stringify(reply));
    const closed = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    void closed.then((code) => events.push(`close ${code}`));
    c.send({ barcode: 'IN-FLIGHT', id: 'late' });
    await called;
    // As the supervisor does: the instance's signal first, then stop().
    r.host.abort.abort();
    const stopped = r.collector.stop();
    release();
    await stopped;
    expect(await closed).toBe(1001);
    expect(events).toHaveLength(2);
    expect(JSON.parse(events[0]!)).toMatchObject({ ok: false, id: 'late', error: { code: 'ERP_SCAN_UNAVAILABLE', retry_after_ms: 5_000 } });
    expect(events[1]).toBe('close 1001');
    expect(records(r)).toEqual([]);
  });

  it('a port in use fails the start with ERP_PORT_IN_USE naming the setting', async () => {
    const port = await freePort();
    const blocker = createServer().listen(port, '127.0.0.1');
    await once(blocker, 'listening');
    cleanups.push(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
    const cfg = config({ port });
    const host = testHost(files.open(), cfg, files.dir);
    const err = await new ScannerWsCollector(cfg, host.ctx).start().catch((e: unknown) => e);
    expect(isErpEdgeError(err, 'ERP_PORT_IN_USE')).toBe(true);
    expect((err as Error).message).toContain(`collectors.${STREAM}.port`);
  });
});

describe('scanner-ws: fuzzed messages (#12 item 6)', () => {
  /** A valid scan, then some of its fields dropped, retyped or made huge. */
  const mutatedScan = fc
    .record({
      barcode: fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.constant(']C10109501101020938')),
      ts: fc.option(fc.oneof(fc.integer({ min: 0, max: 2e12 }), fc.constant('2026-12-03T10:00:00Z')), { nil: undefined }),
      id: fc.option(fc.string({ minLength: 1, maxLength: 20 }), { nil: undefined }),
      edits: fc.array(
        fc.tuple(
          fc.constantFrom('barcode', 'ts', 'id', 'device', 'location', 'extra'),
          fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('', 'x'.repeat(9_000), -1, 1.5, 8.64e15 + 1, 'NaN', null, 'hh-2', 'hh-1')),
        ),
        { maxLength: 3 },
      ),
    })
    .map(({ barcode, ts, id, edits }) => {
      const m: Record<string, unknown> = { barcode, ...(ts !== undefined ? { ts } : {}), ...(id !== undefined ? { id } : {}) };
      for (const [k, v] of edits) {
        if (v === undefined) delete m[k];
        else m[k] = v;
      }
      return m;
    });
  const deep = (n: number) => `{"barcode":"A","x":${'['.repeat(n)}${']'.repeat(n)}}`;
  type Msg = { text: string } | { binary: Buffer };
  const message: fc.Arbitrary<Msg> = fc.oneof(
    mutatedScan.map((m) => ({ text: JSON.stringify(m) })),
    fc.array(mutatedScan, { maxLength: 5 }).map((a) => ({ text: JSON.stringify(a) })),
    fc.jsonValue({ maxDepth: 3 }).map((v) => ({ text: JSON.stringify(v) ?? 'null' })),
    fc.string({ maxLength: 50 }).map((text) => ({ text })), // mostly not JSON
    fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => ({ binary: Buffer.from(b) })), // binary frames: ws checks no UTF-8 there
    fc.integer({ min: 1_000, max: 20_000 }).map((n) => ({ text: deep(n) })),
  );

  it('answers each of 300 random messages with one reply of the right shape (never a throw), keeps the connection, and counts right', async () => {
    const r = await start();
    const c = await asDevice(r.url, 'hh-1');
    const msgs = fc.sample(message, { numRuns: 300, seed: 1012 });
    let ok = 0;
    for (const m of msgs) {
      if ('binary' in m) c.ws.send(m.binary, { binary: true });
      else c.ws.send(m.text);
      const reply = await c.next<Reply | Reply[]>();
      let parsed: unknown;
      try {
        parsed = JSON.parse('binary' in m ? m.binary.toString('utf8') : m.text);
      } catch {
        parsed = undefined;
      }
      const many = Array.isArray(parsed) && parsed.length > 0;
      expect(Array.isArray(reply), JSON.stringify(m).slice(0, 200)).toBe(many);
      const replies = Array.isArray(reply) ? reply : [reply];
      if (many) expect(replies).toHaveLength((parsed as unknown[]).length);
      for (const x of replies) {
        expect(typeof x.ok).toBe('boolean');
        if (x.ok) ok++;
        else expect(['ERP_SCAN_INVALID', 'ERP_SCAN_FORBIDDEN']).toContain(x.error.code);
      }
    }
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    expect(ok).toBeGreaterThan(0);
    expect(r.collector.stats().counters).toMatchObject({ messages: msgs.length, accepted: ok, failed: 0 });
    expect(records(r)).toHaveLength(ok);
  });
});

