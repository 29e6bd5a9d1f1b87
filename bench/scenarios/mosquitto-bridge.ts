import { userInfo } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { BridgeMosquitto } from '../lib/bridge-mosquitto.js';
import { sampleRecord } from '../lib/payload.js';
import { freePort } from '../lib/net.js';
import { findBinary, MOSQUITTO_INSTALL } from '../lib/requirements.js';
import { ScenarioUnavailable, type Scenario, type ScenarioContext } from '../types.js';
import { publishQos1, withTimeout } from '../lib/publish.js';

/**
 * The peer baseline users would otherwise deploy: a local Mosquitto with persistence on,
 * bridged (QoS 1, cleansession false) to a second "cloud" Mosquitto, fed by mqtt.js QoS 1.
 *
 * Per repeat, two phases in fresh folders, each with its own pair of brokers:
 *  1. store-and-forward: cloud down, N messages PUBACKed by the local broker, then the cloud
 *     starts; time from the cloud's start to the N-th distinct record at the cloud subscriber.
 *  2. crash: cloud down, N messages PUBACKed, local broker kill -9 and restarted on the same
 *     config and persistence folder, cloud started; records that never arrive are lost.
 *     A control does the same with a graceful stop (SIGTERM), which must lose nothing.
 *
 * The cloud subscriber's persistent session (clean session false) is created before each
 * phase, with the cloud then stopped gracefully so Mosquitto keeps it; when the cloud comes
 * back, whatever the bridge forwards is queued for the subscriber even before it has
 * reconnected, so there is no race between the bridge and the subscriber.
 */

const TOPIC = 'erp/bench/records';
const STATE_TOPIC = 'bench/bridge/state';
const SUB_ID = 'bench-cloud-sub';
const BRIDGE_ID = 'bench-bridge';

/** Mosquitto's defaults (mosquitto.conf(5)), written out so the results say what was used. */
const AUTOSAVE_INTERVAL_S = 1800;
const AUTOSAVE_ON_CHANGES = false;
/** Outgoing QoS 1 in flight per client, the bridge included (Mosquitto's default is 20). */
const MAX_INFLIGHT = 100;
/** QoS 1 publishes the feeding mqtt.js client keeps unacknowledged at once. */
const PUBLISH_WINDOW = 1_000;
/** The bridge must report itself connected to the cloud within this long (it retries every ~2 s). */
const BRIDGE_CONNECT_MS = 30_000;
/** Phase 2 stops waiting once no new record has arrived for this long. */
const QUIET_MS = 5_000;

interface Pair {
  local: BridgeMosquitto;
  cloud: BridgeMosquitto;
}

/** Writes both configs (nothing started): the local broker bridges erp/# out to the cloud's port. */
async function configurePair(bin: string, dir: string): Promise<Pair> {
  const cloudPort = await freePort();
  const localPort = await freePort();
  if (cloudPort === localPort) throw new Error('freePort returned the same port twice');
  const cloudDir = join(dir, 'cloud');
  const localDir = join(dir, 'local');
  const common = [
    // Started as root, Mosquitto switches to the "mosquitto" user, which cannot write into the
    // bench's 0700 temp folders; naming the current user keeps it as is (ignored when not root).
    `user ${userInfo().username}`,
    `autosave_interval ${AUTOSAVE_INTERVAL_S}`,
    `autosave_on_changes ${AUTOSAVE_ON_CHANGES}`,
    'max_queued_messages 0', // unlimited: the whole outage has to fit
    `max_inflight_messages ${MAX_INFLIGHT}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
  ];
  const cloud = BridgeMosquitto.configure(bin, cloudDir, 'cloud', cloudPort, [
    'persistence true', // only to keep the subscriber's session across the priming stop
    `persistence_location ${cloudDir}/`,
    ...common,
  ]);
  const local = BridgeMosquitto.configure(bin, localDir, 'local', localPort, [
    'persistence true',
    `persistence_location ${localDir}/`,
    ...common,
    '',
    'connection cloud',
    `address 127.0.0.1:${cloudPort}`,
    'bridge_protocol_version mqttv311',
    `remote_clientid ${BRIDGE_ID}`,
    'cleansession false',
    'topic erp/# out 1',
    // A single value (restart_timeout 1) retried only every 6-9 s here (2.0.11); "1 1" retries every ~2 s.
    'restart_timeout 1 1',
    'notifications true',
    `notification_topic ${STATE_TOPIC}`,
  ]);
  return { local, cloud };
}

/** Starts the cloud alone, creates the subscriber's persistent session, stops it gracefully. */
async function primeCloud(cloud: BridgeMosquitto): Promise<void> {
  await cloud.start();
  try {
    const c = await mqtt.connectAsync(cloud.url, { clientId: SUB_ID, clean: false, protocolVersion: 4, reconnectPeriod: 0 });
    try {
      await c.subscribeAsync({ 'erp/#': { qos: 1 }, [STATE_TOPIC]: { qos: 1 } });
    } finally {
      await c.endAsync();
    }
  } finally {
    await cloud.stop('SIGTERM'); // graceful: the session is written to the cloud's persistence file
  }
}

const SEQ_PREFIX = '{"seq":';

/** The record's seq from `{"seq":123,...` without a full JSON parse; -1 if it is not one. */
function seqOf(payload: Buffer): number {
  let i = 0;
  for (; i < SEQ_PREFIX.length; i++) if (payload[i] !== SEQ_PREFIX.charCodeAt(i)) return slowSeqOf(payload);
  let v = 0;
  let digits = 0;
  for (; i < payload.length; i++) {
    const c = payload[i]!;
    if (c < 48 || c > 57) break;
    v = v * 10 + (c - 48);
    digits++;
  }
  return digits > 0 ? v : slowSeqOf(payload);
}

function slowSeqOf(payload: Buffer): number {
  try {
    const seq = (JSON.parse(payload.toString('utf8')) as { seq?: unknown }).seq;
    return typeof seq === 'number' && Number.isInteger(seq) ? seq : -1;
  } catch {
    return -1;
  }
}

/** The cloud-side consumer: resumes its persistent session and counts distinct seqs 1..n. */
class CloudSubscriber {
  private readonly seen: Uint8Array;
  distinct = 0;
  duplicates = 0;
  foreign = 0;
  /** performance.now() of the first record, the latest new record, the bridge's "connected" notification. */
  firstAt: number | undefined;
  lastNewAt: number | undefined;
  bridgeUpAt: number | undefined;
  closed = false;

  private constructor(
    private readonly client: MqttClient,
    readonly n: number,
  ) {
    this.seen = new Uint8Array(n + 1);
  }

  static async connect(url: string, n: number): Promise<CloudSubscriber> {
    const client = mqtt.connect(url, { clientId: SUB_ID, clean: false, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000 });
    const sub = new CloudSubscriber(client, n);
    // Attached before CONNACK: queued messages may follow it immediately.
    client.on('message', (topic, payload) => sub.onMessage(topic, payload));
    client.on('close', () => (sub.closed = true));
    await withTimeout(
      `subscriber connecting to ${url}`,
      new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
        client.once('close', () => reject(new Error('subscriber connection closed before CONNACK')));
      }),
      15_000,
    );
    return sub;
  }

  private onMessage(topic: string, payload: Buffer): void {
    const now = performance.now();
    if (topic === STATE_TOPIC) {
      if (payload.toString() === '1' && this.bridgeUpAt === undefined) this.bridgeUpAt = now;
      return;
    }
    const seq = seqOf(payload);
    if (seq < 1 || seq > this.n) {
      this.foreign++;
      return;
    }
    this.firstAt ??= now;
    if (this.seen[seq]) {
      this.duplicates++;
      return;
    }
    this.seen[seq] = 1;
    this.distinct++;
    this.lastNewAt = now;
  }

  /**
   * Waits until all n distinct records arrived, or (quietMs set) no new one for quietMs once the
   * bridge is up, or timeoutMs passed. Never throws on a shortfall: the caller reports it.
   */
  async waitDelivered(opts: { timeoutMs: number; quietMs?: number; bridgeTimeoutMs: number; diagnostics: () => string; log: (m: string) => void }): Promise<'all' | 'quiet' | 'timeout'> {
    const started = performance.now();
    let lastLog = started;
    for (;;) {
      const now = performance.now();
      if (this.distinct >= this.n) return 'all';
      if (this.closed) throw new Error(`cloud subscriber connection closed after ${this.distinct}/${this.n} records`);
      if (opts.quietMs !== undefined && this.bridgeUpAt !== undefined && now - Math.max(this.bridgeUpAt, this.lastNewAt ?? 0) > opts.quietMs) return 'quiet';
      if (this.bridgeUpAt === undefined && this.distinct === 0 && now - started > opts.bridgeTimeoutMs) {
        throw new Error(`the bridge did not connect to the cloud within ${opts.bridgeTimeoutMs} ms; ${opts.diagnostics()}`);
      }
      if (now - started > opts.timeoutMs) return 'timeout';
      if (now - lastLog > 10_000) {
        lastLog = now;
        opts.log(`  delivered ${this.distinct}/${this.n}${this.bridgeUpAt === undefined ? ' (bridge not connected yet)' : ''}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async end(): Promise<void> {
    await this.client.endAsync(true).catch(() => undefined);
  }
}

function rate(n: number, ms: number): number {
  return n / (Math.max(ms, 1) / 1000);
}

/** Phase 1: store-and-forward while the cloud is down, then the replay when it returns. */
async function storeAndForward(ctx: ScenarioContext, bin: string, dir: string, n: number, timeoutMs: number): Promise<void> {
  const { local, cloud } = await configurePair(bin, dir);
  let sub: CloudSubscriber | undefined;
  try {
    await primeCloud(cloud);
    await local.start();
    ctx.log(`store-and-forward: publishing ${n} QoS 1 messages to the local broker, cloud down`);
    const pubSeconds = await publishQos1(local.url, TOPIC, n, sampleRecord, { window: PUBLISH_WINDOW, timeoutMs, log: ctx.log });
    ctx.record('local mosquitto accept rate (QoS 1, cloud down)', 'events/s', n / pubSeconds);
    ctx.log(`  all ${n} PUBACKed in ${pubSeconds.toFixed(1)} s; starting the cloud broker`);

    const t0 = performance.now();
    await cloud.start();
    sub = await CloudSubscriber.connect(cloud.url, n);
    const outcome = await sub.waitDelivered({ timeoutMs, bridgeTimeoutMs: BRIDGE_CONNECT_MS, diagnostics: () => `local log: ${local.log.slice(-800)}`, log: ctx.log });
    ctx.record('bridge replay delivered', 'events', sub.distinct, String(n));
    if (sub.bridgeUpAt !== undefined) ctx.record('bridge reconnect after cloud start', 'ms', sub.bridgeUpAt - t0);
    if (outcome === 'all' && sub.lastNewAt !== undefined && sub.firstAt !== undefined) {
      ctx.record('bridge replay: cloud start → all delivered', 'events/s', rate(n, sub.lastNewAt - t0));
      ctx.record('bridge replay: first → last delivery', 'events/s', rate(n - 1, sub.lastNewAt - sub.firstAt));
      ctx.log(`  replay: ${n} records in ${((sub.lastNewAt - t0) / 1000).toFixed(2)} s from the cloud's start (${sub.duplicates} duplicates)`);
    } else {
      ctx.note(`store-and-forward run in ${dir}: only ${sub.distinct} of ${n} records reached the cloud within ${timeoutMs} ms; no replay rate recorded for it`);
      ctx.log(`  replay incomplete: ${sub.distinct}/${n}; local log: ${local.log.slice(-500)}`);
    }
    if (sub.duplicates > 0) ctx.note(`store-and-forward: the cloud subscriber saw ${sub.duplicates} duplicate records (QoS 1 is at-least-once)`);
  } finally {
    await sub?.end();
    await local.stop('SIGTERM');
    await cloud.stop('SIGTERM');
  }
}

/**
 * Phase 2 (signal SIGKILL) and its control (SIGTERM): `n` records PUBACKed while the cloud is
 * down, the local broker stopped with `signal` and restarted on the same config and persistence
 * folder, the cloud started; returns how many records never reached the cloud subscriber.
 */
async function lossAfterRestart(ctx: ScenarioContext, bin: string, dir: string, n: number, signal: 'SIGKILL' | 'SIGTERM', timeoutMs: number): Promise<number> {
  const label = signal === 'SIGKILL' ? 'kill -9' : 'graceful stop (control)';
  const { local, cloud } = await configurePair(bin, dir);
  let sub: CloudSubscriber | undefined;
  try {
    await primeCloud(cloud);
    await local.start();
    ctx.log(`${label}: publishing ${n} QoS 1 messages to the local broker, cloud down`);
    const pubSeconds = await publishQos1(local.url, TOPIC, n, sampleRecord, { window: PUBLISH_WINDOW, timeoutMs, log: ctx.log });
    ctx.log(`  all ${n} PUBACKed in ${pubSeconds.toFixed(1)} s; ${signal} to the local broker, restart, cloud up`);
    await local.stop(signal, timeoutMs);
    await cloud.start();
    sub = await CloudSubscriber.connect(cloud.url, n);
    await local.start(timeoutMs); // same config and persistence folder: loads whatever was saved
    const waitMs = 60_000 + Math.round(n * 0.2);
    const outcome = await sub.waitDelivered({
      timeoutMs: waitMs,
      quietMs: QUIET_MS,
      bridgeTimeoutMs: BRIDGE_CONNECT_MS,
      diagnostics: () => `local log: ${local.log.slice(-800)}`,
      log: ctx.log,
    });
    const lost = n - sub.distinct;
    ctx.log(`  after ${label}: ${sub.distinct}/${n} delivered, ${lost} lost (stopped waiting: ${outcome})`);
    if (outcome === 'timeout') ctx.note(`${label} run in ${dir}: records were still arriving when the ${waitMs} ms bound passed; its loss figure is an upper bound`);
    return lost;
  } finally {
    await sub?.end();
    await local.stop('SIGTERM');
    await cloud.stop('SIGTERM');
  }
}

export const mosquittoBridge: Scenario = {
  name: 'mosquitto-bridge',
  description:
    'peer baseline: local Mosquitto (persistence on) bridged QoS 1 to a cloud Mosquitto, fed by mqtt.js QoS 1; replay rate after a cloud outage and records lost when the local broker is killed with -9',
  async run(ctx: ScenarioContext) {
    const bin = findBinary('mosquitto');
    if (!bin) throw new ScenarioUnavailable(`mosquitto is not installed; ${MOSQUITTO_INSTALL}`);
    const n = Math.max(100, Math.round((ctx.quick ? 20_000 : 1_000_000) * ctx.scale));
    // Generous but finite: Mosquitto on this class of machine does tens of thousands per second.
    const timeoutMs = 120_000 + n;
    const control = Math.min(n, 10_000);
    ctx.param('events', n);
    ctx.param('control_events', control);
    ctx.param('payload_bytes', Buffer.byteLength(sampleRecord(n)));
    ctx.param('mosquitto', bin);
    ctx.param('autosave_interval', AUTOSAVE_INTERVAL_S);
    ctx.param('autosave_on_changes', AUTOSAVE_ON_CHANGES);
    ctx.param('max_inflight_messages', MAX_INFLIGHT);
    ctx.param('max_queued_messages', 0);
    ctx.param('bridge', 'topic erp/# out 1, cleansession false, mqttv311, restart_timeout 1 1');
    ctx.param('publish_window', PUBLISH_WINDOW);
    ctx.param('kill9_quiet_ms', QUIET_MS);

    for (let r = 0; r < ctx.repeats; r++) {
      ctx.log(`repeat ${r + 1}/${ctx.repeats}`);
      await storeAndForward(ctx, bin, join(ctx.dir, `bridge-${r}`, 'store-forward'), n, timeoutMs);
      const lost = await lossAfterRestart(ctx, bin, join(ctx.dir, `bridge-${r}`, 'kill9'), n, 'SIGKILL', timeoutMs);
      ctx.record('bridge events lost after kill -9', 'events', lost, '0');
      // Control: the same with a graceful stop, which must lose nothing; it shows the persistence
      // folder is usable, so a loss above comes from when Mosquitto saves, not from the setup.
      const controlLost = await lossAfterRestart(ctx, bin, join(ctx.dir, `bridge-${r}`, 'sigterm'), control, 'SIGTERM', timeoutMs);
      ctx.record('bridge events lost after SIGTERM restart (control)', 'events', controlLost, '0');
      if (controlLost > 0) ctx.note(`control: ${controlLost} of ${control} records were lost even after a graceful stop; the persistence setup is suspect`);
    }

    ctx.note(
      `Mosquitto writes its persistence file only every autosave_interval (${AUTOSAVE_INTERVAL_S} s here, the default; autosave_on_changes ${AUTOSAVE_ON_CHANGES}) and on a graceful stop: messages it has PUBACKed since the last save are lost on kill -9 or power loss`,
    );
    ctx.note('replay time runs from the cloud broker\'s spawn and includes the bridge\'s reconnect wait (restart_timeout 1 1: a retry every ~2 s; see "bridge reconnect after cloud start")');
    ctx.note('the cloud subscriber is mqtt.js on the same machine, so on 2 cores its own cost is part of the replay rate, as the relay\'s is for erp-edge');
  },
};
