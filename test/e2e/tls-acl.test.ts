/**
 * #12 item 5 acceptance: transport security against a real Mosquitto TLS listener the test spawns,
 * with certificates made by openssl and the shipped ACL template (config/mosquitto/erp-edge.acl).
 * A real relay (its own client certificate) and real agents (one certificate each, CN = site/agent).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { createLogger } from '../../common/logger.js';
import { eventsTopicV2, healthTopic } from '../../common/wire-v2.js';
import { loadAgentConfig } from '../../agent/config.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { Agent } from '../../agent/agent.js';
import { Relay } from '../../cloud-relay/relay.js';
import { makeTempDir } from '../helpers/tmp.js';
import { canConnect, freePort, waitFor } from '../helpers/net.js';
import { runCli, runCliAsync } from '../helpers/cli.js';
import { relayYaml } from '../helpers/pipeline.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, mosquittoBinary, requireBinary } from '../helpers/requirements.js';
import { agentCn, makePki, OPENSSL_INSTALL, type CertFiles, type TestPki } from '../helpers/certs.js';
import { batchV2 } from '../helpers/relay-wire.js';

const ready = requireBinary('mosquitto', MOSQUITTO_INSTALL) && requireBinary('openssl', OPENSSL_INSTALL);
const ACL_TEMPLATE = resolve(import.meta.dirname, '../../config/mosquitto/erp-edge.acl');

const SITE_A = 'site-a';
const SITE_B = 'site-b';
const AGENT = 'agent-1';

/** A pino logger whose lines the test reads. */
function capturedLogger(level = 'debug') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger({ level, destination }), lines, text: () => lines.join('\n') };
}

describe.skipIf(!ready)('#12 transport security: TLS with per-agent certificates and the shipped ACL', () => {
  let dir: string;
  let cleanupDir: () => void;
  let pki: TestPki;
  let siteA: CertFiles;
  let siteB: CertFiles;
  let expired: CertFiles;
  let broker: MosquittoProcess;
  /** A second listener of the same broker whose certificate names only broker.invalid. */
  let wrongNameUrl: string;
  let relay: Relay;
  const relayLog = capturedLogger('info');
  const cleanups: (() => Promise<void> | void)[] = [];

  beforeAll(async () => {
    ({ dir, cleanup: cleanupDir } = makeTempDir('tls-acl-'));
    chmodSync(dir, 0o755); // Mosquitto started as root reads its files as the mosquitto user
    pki = makePki(join(dir, 'pki'));
    siteA = pki.ca.issue('site-a', { cn: agentCn(SITE_A, AGENT), usage: 'client', passphrase: 'site-a-key-pass' });
    siteB = pki.ca.issue('site-b', { cn: agentCn(SITE_B, AGENT), usage: 'client' });
    expired = pki.ca.issue('site-a-expired', { cn: agentCn(SITE_A, AGENT), usage: 'client', start: '20200101000000Z', end: '20200201000000Z' });
    // The shipped template, unchanged (copied only so the `mosquitto` user can read it).
    copyFileSync(ACL_TEMPLATE, join(dir, 'pki', 'erp-edge.acl'));
    const wrongNamePort = await freePort();
    wrongNameUrl = `mqtts://127.0.0.1:${wrongNamePort}`;
    broker = await MosquittoProcess.start(dir, undefined, {
      tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true, useIdentityAsUsername: true },
      aclFile: join(dir, 'pki', 'erp-edge.acl'),
      extra: [
        `listener ${wrongNamePort} 127.0.0.1`,
        `cafile ${pki.ca.cert}`,
        `certfile ${pki.serverWrongName.cert}`,
        `keyfile ${pki.serverWrongName.key}`,
        'require_certificate true',
        'use_identity_as_username true',
      ],
    });
    // The relay on its own certificate, paths relative to its config file.
    const rel = (p: string) => relative(dir, p);
    const brokerBlock = `${broker.url}\n  tls:\n    ca_file: ${rel(pki.ca.cert)}\n    cert_file: ${rel(pki.relay.cert)}\n    key_file: ${rel(pki.relay.key)}`;
    writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort: 0, brokerUrl: brokerBlock }));
    relay = await Relay.start(loadRelayConfig(join(dir, 'relay.yaml')), relayLog.logger);
    await waitFor('the relay subscribed through TLS', () => relay.ready.then(() => true), 15_000);
  }, 60_000);

  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  afterAll(async () => {
    await relay?.stop();
    await broker?.stop();
    cleanupDir?.();
  });

  /** An agent config in its own folder: TLS files relative to it, a synthetic collector of `total` records. */
  function agentConfig(name: string, o: { url?: string; ca?: string; cert: CertFiles; passphrase?: string; total?: number; site?: string }): string {
    const d = join(dir, name);
    mkdirSync(d, { recursive: true });
    const rel = (p: string) => relative(d, p);
    const path = join(d, 'agent.yaml');
    writeFileSync(
      path,
      `site: ${o.site ?? SITE_A}
agent: ${AGENT}
log_level: debug
data_dir: ./data
http:
  listen: 127.0.0.1:0
transport:
  url: ${o.url ?? broker.url}
  ack_timeout: 3s
  reconnect_period: 100ms
  health_interval: 300ms
  tls:
    ca_file: ${rel(o.ca ?? pki.ca.cert)}
    cert_file: ${rel(o.cert.cert)}
    key_file: ${rel(o.cert.key)}
${o.passphrase ? `    passphrase: \${AGENT_KEY_PASS}\n` : ''}collectors:
  - type: synthetic
    name: orders
    rate: 0
    total: ${o.total ?? 300}
    batch: 50
`,
    );
    return path;
  }

  async function startAgent(path: string, env: NodeJS.ProcessEnv = {}) {
    const log = capturedLogger('debug');
    const agent = await Agent.start(loadAgentConfig(path, { env: { ...process.env, ...env } }), log.logger);
    cleanups.push(() => agent.stop());
    return { agent, log };
  }

  /** A raw client holding a certificate (a rogue or a watcher), MQTT 5 unless said otherwise. */
  async function client(cert: CertFiles, o: { passphrase?: string; protocolVersion?: 4 | 5 } = {}): Promise<MqttClient> {
    const c = await mqtt.connectAsync(broker.url, {
      clientId: `test-${randomUUID()}`,
      protocolVersion: o.protocolVersion ?? 5,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ca: readFileSync(pki.ca.cert),
      cert: readFileSync(cert.cert),
      key: readFileSync(cert.key),
      ...(o.passphrase ? { passphrase: o.passphrase } : {}),
    });
    cleanups.push(() => c.endAsync(true));
    return c;
  }

  it("an agent holding site A's certificate (encrypted key) delivers every record through the TLS Mosquitto and the ACL; its retained presence and will pass", async () => {
    const path = agentConfig('agent-ok', { cert: siteA, passphrase: 'site-a-key-pass', total: 300 });
    const { agent, log } = await startAgent(path, { AGENT_KEY_PASS: 'site-a-key-pass' });
    await waitFor('300 records acked by the relay', () => agent.outbox.ackedSeq('orders') === 300, 30_000);
    const stored = (await relay.store.listStreams()).find((s) => s.site === SITE_A && s.agent === AGENT && s.stream === 'orders');
    expect(stored?.last_seq).toBe(300);
    // The birth is retained on erp-edge/v2/site-a/agent-1/status: allowed by the ACL, seen by the relay.
    await waitFor('the agent online at the relay', () => relay.fleet.list().find((a) => a.site === SITE_A && a.agent === AGENT)?.online === true, 10_000);
    expect(agent.forwarder.getStats().wire).toBe(2);
    expect(log.text()).not.toMatch(/"level":50/);
    expect(relayLog.text()).not.toMatch(/"level":50/);
  });

  it("a client holding site A's certificate cannot publish into (or read) site B's topics: the real Mosquitto refuses", async () => {
    const watcher = await client(pki.relay); // the relay's identity reads everything
    const seen: string[] = [];
    watcher.on('message', (topic) => seen.push(topic));
    await watcher.subscribeAsync('erp-edge/#', { qos: 1, nl: true }); // nl: not its own publishes

    const rogue = await client(siteA, { passphrase: 'site-a-key-pass' });
    const forged = JSON.stringify(batchV2(1, 3, { site: SITE_B, agent: AGENT, stream: 'orders' }));
    // MQTT 5: the PUBACK says 0x87 Not authorized.
    const refused = await rogue.publishAsync(eventsTopicV2(SITE_B, AGENT, 'orders'), forged, { qos: 1 }).then(
      () => undefined,
      (err: Error & { code?: number }) => err,
    );
    expect(refused?.code).toBe(0x87);
    // Site B's acks cannot be read either: Mosquitto grants the subscription and delivers nothing
    // on it. The relay's identity acks into site B's topic, then into site A's: only A's arrives.
    const received: string[] = [];
    rogue.on('message', (topic) => received.push(topic));
    await rogue.subscribeAsync([`erp-edge/v2/${SITE_B}/${AGENT}/ack`, `erp-edge/v2/${SITE_A}/${AGENT}/ack`], { qos: 1 });
    await watcher.publishAsync(`erp-edge/v2/${SITE_B}/${AGENT}/ack`, 'for site B only', { qos: 1 });
    await watcher.publishAsync(`erp-edge/v2/${SITE_A}/${AGENT}/ack`, 'marker', { qos: 1 });
    await waitFor("site A's own ack", () => received.includes(`erp-edge/v2/${SITE_A}/${AGENT}/ack`), 10_000);
    expect(received).toEqual([`erp-edge/v2/${SITE_A}/${AGENT}/ack`]);
    // MQTT 3.1.1 has no refusal to give: Mosquitto drops the message silently.
    const rogueV4 = await client(siteA, { passphrase: 'site-a-key-pass', protocolVersion: 4 });
    await rogueV4.publishAsync(eventsTopicV2(SITE_B, AGENT, 'orders'), forged, { qos: 1 });
    await rogueV4.publishAsync(`erp-edge/v1/${SITE_B}/${AGENT}/events/orders`, forged, { qos: 1 });
    // A marker on site A's own topic, after them: once the watcher has it, the earlier ones would have arrived.
    await rogueV4.publishAsync(healthTopic(SITE_A, AGENT), 'marker', { qos: 1 });
    await waitFor('the marker at the watcher', () => seen.includes(healthTopic(SITE_A, AGENT)), 10_000);
    expect(seen.filter((t) => t.includes(`/${SITE_B}/`))).toEqual([]);
    // The relay (subscribed to everything) stored nothing for site B.
    expect((await relay.store.listStreams()).filter((s) => s.site === SITE_B)).toEqual([]);
  });

  it("a forged envelope on site A's own topic naming site B is rejected and counted by the relay (topic_mismatch; every variant: test/cloud-relay/relay.test.ts)", async () => {
    const before = relay.metrics.snapshot().rejected.topic_mismatch;
    const rogue = await client(siteA, { passphrase: 'site-a-key-pass' });
    // Allowed by the ACL (its own topic), but the body claims to be site B.
    await rogue.publishAsync(eventsTopicV2(SITE_A, AGENT, 'forged'), JSON.stringify(batchV2(1, 3, { site: SITE_B, agent: AGENT, stream: 'forged' })), { qos: 1 });
    await waitFor('topic_mismatch counted', () => relay.metrics.snapshot().rejected.topic_mismatch === before + 1, 10_000);
    expect((await relay.store.listStreams()).filter((s) => s.stream === 'forged')).toEqual([]);
  });

  it('wrong CA: the agent logs a clear error naming transport.tls.ca_file, keeps capturing and retrying (one line for many attempts)', async () => {
    const path = agentConfig('agent-wrong-ca', { cert: siteB, site: SITE_B, ca: pki.otherCa.cert, total: 100 });
    const { agent, log } = await startAgent(path);
    const attempts = countReconnects(agent);
    await waitFor('three connection attempts', () => attempts.n >= 3, 15_000);
    const lines = log.lines.filter((l) => l.includes('wrong CA'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).msg).toMatch(/^TLS to the broker failed: wrong CA: .* transport\.tls\.ca_file \(.*other-ca\/ca\.pem\) does not vouch for \(unable to verify; (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)\); give the CA that signed the broker's certificate; retrying$/);
    expect(JSON.parse(lines[0]!).err.code).toBe('ERP_BROKER_TLS');
    await waitFor('capture went on', () => agent.outbox.lastSeq('orders') === 100, 10_000);
    expect(agent.forwarder.getStats().connected).toBe(false);
    // `status` says why it is not connected.
    const status = await runCliAsync('edge-agent', ['status', '--config', path]);
    expect(status.stdout).toMatch(/^forwarder: NOT connected, .*\n {2}broker: TLS to the broker failed: wrong CA: .*transport\.tls\.ca_file \(\S+other-ca\/ca\.pem\)/m);
  });

  it('the relay with a wrong CA says so too, naming broker.tls.ca_file, and keeps retrying', async () => {
    const rdir = join(dir, 'relay-wrong-ca');
    mkdirSync(rdir, { recursive: true });
    const brokerBlock = `${broker.url}\n  tls:\n    ca_file: ${pki.otherCa.cert}\n    cert_file: ${pki.relay.cert}\n    key_file: ${pki.relay.key}`;
    writeFileSync(join(rdir, 'relay.yaml'), relayYaml({ dbPath: join(rdir, 'relay.db'), httpPort: 0, brokerUrl: brokerBlock }).replace('id: relay-test', 'id: relay-wrong-ca'));
    const log = capturedLogger('info');
    const r = await Relay.start(loadRelayConfig(join(rdir, 'relay.yaml')), log.logger);
    cleanups.push(() => r.stop());
    const line = await waitFor('the wrong CA logged', () => log.lines.find((l) => l.includes('wrong CA')), 15_000);
    expect(JSON.parse(line).msg).toMatch(/^TLS to the broker failed: wrong CA: .* broker\.tls\.ca_file \(\S+other-ca\/ca\.pem\) does not vouch for/);
  });

  it("host name mismatch: the broker's certificate names broker.invalid, the agent connects to 127.0.0.1", async () => {
    const path = agentConfig('agent-wrong-name', { cert: siteB, site: SITE_B, url: wrongNameUrl, total: 10 });
    const { agent, log } = await startAgent(path);
    const line = await waitFor('the mismatch logged', () => log.lines.find((l) => l.includes('host name mismatch')), 15_000);
    expect(JSON.parse(line).msg).toBe(
      'TLS to the broker failed: host name mismatch: the broker\'s certificate is not for "127.0.0.1" (it lists DNS:broker.invalid); connect by a name it lists (transport.url) or set transport.tls.servername; retrying',
    );
    expect(agent.forwarder.getStats().connected).toBe(false);
  });

  it('an expired client certificate: named with its date at start and by `validate`; the broker refuses it and the agent says why, and does not crash', async () => {
    const path = agentConfig('agent-expired', { cert: expired, total: 10 });
    const v = runCli('edge-agent', ['validate', '--config', path]);
    expect(v.status).toBe(1);
    expect(v.stderr).toMatch(/^ERP_TLS_CERT_DATES: transport\.tls\.cert_file \(\S+site-a-expired\.pem\): the certificate \(CN=site-a\/agent-1\) expired on 2020-02-01T00:00:00\.000Z: renew it$/m);

    const { agent, log } = await startAgent(path);
    expect(log.lines.find((l) => l.includes('expired on 2020-02-01T00:00:00.000Z'))).toBeDefined();
    const refused = await waitFor('the broker refusal logged', () => log.lines.find((l) => l.includes('as expired')), 15_000);
    expect(JSON.parse(refused).msg).toMatch(/^TLS to the broker failed: the broker refused this client's certificate transport\.tls\.cert_file \(\S+site-a-expired\.pem\) as expired \(it expired on 2020-02-01T00:00:00\.000Z\): renew it; retrying$/);
    await waitFor('capture went on', () => agent.outbox.lastSeq('orders') === 10, 10_000);
  });
});

describe.skipIf(!ready)('the shipped listener config (config/mosquitto/erp-edge.conf)', () => {
  it('starts Mosquitto as documented (paths and port changed only): an agent certificate connects, the ACL governs it, no certificate no connection', async () => {
    const { dir, cleanup } = makeTempDir('tls-conf-');
    chmodSync(dir, 0o755);
    const pki = makePki(join(dir, 'pki'));
    const agentA = pki.ca.issue('a', { cn: agentCn(SITE_A, AGENT), usage: 'client' });
    copyFileSync(ACL_TEMPLATE, join(dir, 'pki', 'erp-edge.acl'));
    const port = await freePort();
    const conf = readFileSync(resolve(import.meta.dirname, '../../config/mosquitto/erp-edge.conf'), 'utf8')
      .replace('listener 8883', `listener ${port} 127.0.0.1`)
      .replace('/etc/mosquitto/certs/ca.pem', pki.ca.cert)
      .replace('/etc/mosquitto/certs/broker.pem', pki.server.cert)
      .replace('/etc/mosquitto/certs/broker.key', pki.server.key)
      .replace('/etc/mosquitto/erp-edge.acl', join(dir, 'pki', 'erp-edge.acl'));
    writeFileSync(join(dir, 'mosquitto.conf'), conf);
    const proc = spawn(mosquittoBinary(), ['-c', join(dir, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr?.on('data', (d) => (stderr += String(d)));
    try {
      await waitFor('the documented listener', () => {
        if (proc.exitCode !== null) throw new Error(`mosquitto exited with ${proc.exitCode}: ${stderr}`);
        return canConnect(port);
      }, 10_000);
      const url = `mqtts://127.0.0.1:${port}`;
      const c = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, ca: readFileSync(pki.ca.cert), cert: readFileSync(agentA.cert), key: readFileSync(agentA.key) });
      await c.publishAsync(healthTopic(SITE_A, AGENT), '{}', { qos: 1 });
      const refused = await c.publishAsync(healthTopic(SITE_B, AGENT), '{}', { qos: 1 }).then(() => undefined, (err: { code?: number }) => err.code);
      expect(refused).toBe(0x87);
      await c.endAsync();
      const anonymous = await mqtt.connectAsync(url, { reconnectPeriod: 0, ca: readFileSync(pki.ca.cert), connectTimeout: 5_000 }).then(() => 'connected', (err: { code?: string }) => err.code);
      expect(anonymous).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    } finally {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
      cleanup();
    }
  });
});

/** Counts mqtt.js reconnect attempts of the agent's forwarder (its client is private: a test's look inside). */
function countReconnects(agent: Agent): { n: number } {
  const counter = { n: 0 };
  const c = (agent.forwarder as unknown as { client: MqttClient }).client;
  c.on('reconnect', () => counter.n++);
  return counter;
}
