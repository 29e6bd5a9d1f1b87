import { join } from 'node:path';
import type { AgentSnapshot } from '../../agent/state/agent-state.js';
import { controlRequest, controlSocketPath } from '../../agent/state/control.js';
import { measureFileDrop, type FileDropMeasured } from '../lib/file-drop-pass.js';
import { MosquittoProcess } from '../lib/mosquitto.js';
import { writeOrderLinesCsv } from '../lib/order-lines-csv.js';
import { agentDataDir, DIST, relayStreamSpan, startAgent, startRelay, waitCollectorRunning } from '../lib/pipeline.js';
import { cpuSeconds, sampleRss } from '../lib/proc-stats.js';
import { relayLastSeq } from '../lib/processes.js';
import { dialScanner, prng, scanLines, writeSplit } from '../lib/scan-senders.js';
import { freePort, waitFor } from '../lib/net.js';
import type { Scenario, ScenarioContext } from '../types.js';

const COLLECTOR = 'scans';
const CONNECTIONS = 50;
const MB = 2 ** 20;
const GS = '\x1d';

/**
 * Issue #10: scans/s through `scanner-tcp` from 50 connections (each its own device, by remote
 * address 127.0.0.2…51), end to end to the relay (acked and stored), beside the file-drop rate
 * measured in the same run on as many rows. Each connection sends its scans as fast as the agent
 * reads them, cut at random byte boundaries (one scan split across writes, several in one).
 */
export const scannerTcp: Scenario = {
  name: 'scanner-tcp',
  description: 'GS1-128 scans from 50 TCP connections → relay store complete, beside a file-drop pass of as many rows in the same run; agent RSS and CPU',
  async run(ctx: ScenarioContext) {
    const perConnection = Math.max(20, Math.round(((ctx.quick ? 20_000 : 200_000) * ctx.scale) / CONNECTIONS));
    const scans = perConnection * CONNECTIONS;
    const csv = join(ctx.dir, 'order-lines.csv');
    const csvBytes = writeOrderLinesCsv(csv, scans);
    const streams = Array.from({ length: CONNECTIONS }, (_, c) => scanLines(codesOf(c, perConnection), '\r\n'));
    const scanBytes = streams.reduce((n, b) => n + b.length, 0);
    ctx.param('scans', scans);
    ctx.param('connections', CONNECTIONS);
    ctx.param('scan_bytes', scanBytes);
    ctx.param('collector', 'scanner-tcp, listen, framing crlf, device by remote address');
    ctx.param('file_drop_rows', scans);
    ctx.param('file_drop_bytes', csvBytes);
    ctx.log(`${scans} scans (${(scanBytes / MB).toFixed(1)} MB) over ${CONNECTIONS} connections; file-drop pass of ${scans} rows (${(csvBytes / MB).toFixed(1)} MB)`);
    for (let r = 0; r < ctx.repeats; r++) {
      // Alternating which goes first, so neither always runs on a warmer machine.
      const order = r % 2 === 0 ? ['scanner', 'file-drop'] : ['file-drop', 'scanner'];
      let scanner: ScannerMeasured | undefined;
      let fileDrop: FileDropMeasured | undefined;
      for (const which of order) {
        if (which === 'scanner') scanner = await measureScanner(ctx, join(ctx.dir, `scanner-${r}`), streams, scans);
        else fileDrop = await measureFileDrop(ctx, join(ctx.dir, `file-drop-${r}`), csv, scans, DIST);
      }
      const scanRate = scans / scanner!.endToEnd;
      const fileRate = scans / fileDrop!.endToEnd;
      ctx.record('scanner-tcp end to end: first byte → relay has every scan', 'scans/s', scanRate, 'beside file-drop');
      ctx.record('file-drop end to end, same run and row count', 'rows/s', fileRate, 'reference');
      ctx.record('scanner-tcp rate / file-drop rate', 'x', scanRate / fileRate);
      ctx.record('scanner-tcp: first byte → last scan read by the agent', 's', scanner!.allRead);
      ctx.record('scanner-tcp agent RSS (max)', 'MB', scanner!.rssMb);
      ctx.record('file-drop agent RSS (max), same run', 'MB', fileDrop!.rssMb);
      ctx.record('scanner-tcp agent CPU over the run (100 = one core)', '%', scanner!.agentCpu);
      ctx.record('scanner-tcp relay CPU over the run (100 = one core)', '%', scanner!.relayCpu);
    }
    ctx.note('scanner-tcp: timed from the first byte sent until the relay committed the last scan; a scan record\'s ts is its receive time, so "last scan read" is when the agent framed the last one');
    ctx.note('file-drop figure includes its stable_time (500 ms) before the file is read: on a small pass that weighs; file-drop-bulk measures it on 2 M rows');
  },
};

/** Connection c's scans: GS1-128 (symbology ]C1) with GTIN, expiry, batch and a serial, GS-separated. */
function codesOf(c: number, n: number): string[] {
  const rand = prng(1_000 + c);
  return Array.from({ length: n }, (_, i) => `]C1010950110153000317${expiry(rand)}10LOT${Math.floor(rand() * 1_000)}${GS}21${String(c).padStart(2, '0')}${String(i).padStart(8, '0')}`);
}

function expiry(rand: () => number): string {
  const m = 1 + Math.floor(rand() * 12);
  return `27${String(m).padStart(2, '0')}${String(1 + Math.floor(rand() * 28)).padStart(2, '0')}`;
}

interface ScannerMeasured {
  allRead: number;
  endToEnd: number;
  rssMb: number;
  agentCpu: number;
  relayCpu: number;
}

async function measureScanner(ctx: ScenarioContext, dir: string, streams: Buffer[], scans: number): Promise<ScannerMeasured> {
  const port = await freePort();
  const broker = await MosquittoProcess.start(ctx.dir);
  const relay = await startRelay(dir, broker.url, true, DIST);
  const collectorsYaml = `  - type: scanner-tcp\n    name: ${COLLECTOR}\n    host: 127.0.0.1\n    port: ${port}\n    framing: { terminator: crlf }\n`;
  const agent = startAgent(dir, { brokerUrl: broker.url, total: 0, rate: 0, batch: 1, collectorsYaml }, DIST);
  const rss = sampleRss(agent.pid!);
  const sockets: Awaited<ReturnType<typeof dialScanner>>[] = [];
  try {
    await waitCollectorRunning(dir, COLLECTOR, 60_000);
    for (let c = 0; c < CONNECTIONS; c++) {
      const s = await dialScanner(port, '127.0.0.1', `127.0.0.${c + 2}`);
      s.on('error', () => {}); // a reset shows as scans missing at the relay
      sockets.push(s);
    }
    const cpu0 = { agent: cpuSeconds(agent.pid!), relay: cpuSeconds(relay.proc.pid!) };
    const rand = prng(42);
    const t0 = Date.now();
    await Promise.all(sockets.map((s, c) => writeSplit(s, streams[c]!, rand, 8_192, 0)));
    ctx.log(`all scans handed to the sockets after ${Date.now() - t0} ms`);
    await waitFor(
      `relay to store ${scans} scans`,
      async () => {
        if (!agent.running) throw new Error('the agent exited');
        return (await relayLastSeq(relay.httpUrl, COLLECTOR).catch(() => 0)) >= scans;
      },
      120_000 + scans,
      100,
    );
    const wall = (Date.now() - t0) / 1000;
    const status = await controlRequest<AgentSnapshot>(controlSocketPath(agentDataDir(dir)), 'GET', '/status').catch(() => undefined);
    const collector = status?.collectors.find((x) => x.name === COLLECTOR);
    ctx.log(`collector: ${JSON.stringify(collector?.counters ?? {})}; writer: ${JSON.stringify(collector?.writer ?? {})}`);
    const span = relayStreamSpan(relay.dbPath, COLLECTOR);
    if (span.count !== scans) throw new Error(`relay holds ${span.count} scans, expected ${scans}`);
    return {
      allRead: (span.lastTs - t0) / 1000,
      endToEnd: (span.lastReceived - t0) / 1000,
      rssMb: rss.stop().max / MB,
      agentCpu: ((cpuSeconds(agent.pid!) - cpu0.agent) / wall) * 100,
      relayCpu: ((cpuSeconds(relay.proc.pid!) - cpu0.relay) / wall) * 100,
    };
  } finally {
    for (const s of sockets) s.destroy();
    rss.stop();
    await agent.kill('SIGTERM');
    await relay.proc.kill('SIGTERM');
    await broker.stop();
  }
}
