/**
 * #12 item 8: no secret of the config reaches a log line, `status`, `validate` or an error. A full
 * pipeline of real processes at debug level (Mosquitto with a TLS listener, a password file and the
 * shipped ACL; the relay and an agent as child processes, each with a broker password and an
 * encrypted key), errors provoked on purpose (a wrong broker password first, a SQL login that
 * fails, a webhook that cannot be reached, a wrong key passphrase for `validate`), then every byte
 * they wrote is searched for every secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { hashPassword } from '../../cloud-relay/auth/password.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { runCli, runCliAsync, type CliResult } from '../helpers/cli.js';
import { CliProcess, waitForHttp } from '../helpers/pipeline.js';
import { MosquittoProcess } from '../helpers/mosquitto.js';
import { MOSQUITTO_INSTALL, findBinary, requireBinary } from '../helpers/requirements.js';
import { agentCn, makePki, OPENSSL_INSTALL, RELAY_CN } from '../helpers/certs.js';

const ready = requireBinary('mosquitto', MOSQUITTO_INSTALL) && requireBinary('openssl', OPENSSL_INSTALL) && requireBinary('mosquitto_passwd', MOSQUITTO_INSTALL);
const ACL_TEMPLATE = resolve(import.meta.dirname, '../../config/mosquitto/erp-edge.acl');
const SITE = 'site-s';
const AGENT = 'agent-s';

/** Every secret of the run, distinctive so a match cannot be chance; some with characters JSON escapes. */
const SECRETS = {
  agentMqttPassword: 'agent-mqtt-pw-Q7"zv\\x',
  agentWrongPassword: 'agent-wrong-pw-K2m9',
  agentKeyPassphrase: 'agent-key-pass-T5w1',
  relayMqttPassword: 'relay-mqtt-pw-H8c3',
  relayKeyPassphrase: 'relay-key-pass-N4d6',
  sqlPassword: 'sql-login-pw-P9j2',
  apiToken: 'relay-api-token-V3b8f0e1a2c4',
  dashboardPassword: 'dashboard-pw-L6s5',
  webhookBearer: 'webhook-bearer-Z1y7',
  webhookUrlPassword: 'webhook-url-pw-R3t4',
  wrongPassphrase: 'wrong-key-pass-G0q8',
};

describe.skipIf(!ready)('#12 secrets: a full run at debug level never writes one', () => {
  const { dir, cleanup } = makeTempDir('secrets-');
  const outputs: { what: string; text: string }[] = [];
  let relay: CliProcess;
  let agent: CliProcess | undefined;
  let broker: MosquittoProcess;
  let httpUrl: string;
  let passwordHash: string;

  const record = (what: string, r: CliResult) => outputs.push({ what, text: `${r.stdout}\n${r.stderr}` });

  beforeAll(async () => {
    chmodSync(dir, 0o755);
    const pki = makePki(join(dir, 'pki'));
    const relayCert = pki.ca.issue('relay-enc', { cn: RELAY_CN, usage: 'client', passphrase: SECRETS.relayKeyPassphrase });
    const agentCert = pki.ca.issue('agent-enc', { cn: agentCn(SITE, AGENT), usage: 'client', passphrase: SECRETS.agentKeyPassphrase });
    // Username/password on top of certificates: the same ACL template (usernames "<site>/<agent>" and erp-edge-relay).
    const pw = join(dir, 'pki', 'passwords');
    execFileSync(findBinary('mosquitto_passwd')!, ['-c', '-b', pw, RELAY_CN, SECRETS.relayMqttPassword]);
    execFileSync(findBinary('mosquitto_passwd')!, ['-b', pw, agentCn(SITE, AGENT), SECRETS.agentMqttPassword]);
    chmodSync(pw, 0o644);
    copyFileSync(ACL_TEMPLATE, join(dir, 'pki', 'erp-edge.acl'));
    broker = await MosquittoProcess.start(dir, undefined, {
      tls: { cafile: pki.ca.cert, certfile: pki.server.cert, keyfile: pki.server.key, requireCertificate: true },
      passwordFile: pw,
      aclFile: join(dir, 'pki', 'erp-edge.acl'),
    });
    passwordHash = await hashPassword(SECRETS.dashboardPassword);

    const httpPort = await freePort();
    httpUrl = `http://127.0.0.1:${httpPort}`;
    const closedPort = await freePort();
    writeFileSync(
      join(dir, 'relay.yaml'),
      `id: ${RELAY_CN}
log_level: debug
broker:
  url: ${broker.url}
  username: ${RELAY_CN}
  password: \${RELAY_MQTT_PASSWORD}
  tls:
    ca_file: pki/ca/ca.pem
    cert_file: pki/ca/relay-enc.pem
    key_file: pki/ca/relay-enc.key
    passphrase: \${RELAY_KEY_PASSPHRASE}
store:
  path: relay.db
http:
  port: ${httpPort}
auth:
  users:
    - name: ops
      password_hash: "${passwordHash}"
  tokens:
    - name: ci
      token: ${SECRETS.apiToken}
alerts:
  evaluate_every: 200ms
  webhook:
    url: http://hook:${SECRETS.webhookUrlPassword}@127.0.0.1:${closedPort}/alerts
    headers:
      Authorization: Bearer ${SECRETS.webhookBearer}
    retry:
      initial: 200ms
      max: 1s
  rules:
    - name: old-agents
      kind: agent_version_below
      version: "99.0.0"
`,
    );
    mkdirSync(join(dir, 'agent'), { recursive: true });
    writeFileSync(
      join(dir, 'agent', 'agent.yaml'),
      `site: ${SITE}
agent: ${AGENT}
log_level: debug
data_dir: ./data
http:
  listen: 127.0.0.1:0
transport:
  url: ${broker.url}
  username: ${agentCn(SITE, AGENT)}
  password: \${AGENT_MQTT_PASSWORD}
  reconnect_period: 200ms
  ack_timeout: 3s
  health_interval: 300ms
  tls:
    ca_file: ../pki/ca/ca.pem
    cert_file: ../pki/ca/agent-enc.pem
    key_file: ../pki/ca/agent-enc.key
    passphrase: \${AGENT_KEY_PASSPHRASE}
collectors:
  - type: synthetic
    name: orders
    rate: 0
    total: 200
    batch: 50
  - type: sql
    name: erp
    driver: pg
    connection:
      host: 127.0.0.1
      database: postgres
      user: erp_edge_no_such_user
      password: ${SECRETS.sqlPassword}
      connect_timeout: 3s
    retry:
      initial: 200ms
      max: 1s
    tables:
      - table: orders
        mode: incremental
        key: [id]
        version_column: updated_at
`,
    );
  }, 60_000);

  afterAll(async () => {
    await agent?.kill('SIGTERM');
    await relay?.kill('SIGTERM');
    await broker?.stop();
    cleanup();
  });

  const relayEnv = { RELAY_MQTT_PASSWORD: SECRETS.relayMqttPassword, RELAY_KEY_PASSPHRASE: SECRETS.relayKeyPassphrase };
  const agentEnv = (password: string) => ({ AGENT_MQTT_PASSWORD: password, AGENT_KEY_PASSPHRASE: SECRETS.agentKeyPassphrase });
  const agentLog = () => readFileSync(join(dir, 'agent.log'), 'utf8');
  const relayLog = () => readFileSync(join(dir, 'relay.log'), 'utf8');
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${httpUrl}${path}`, { headers: { authorization: `Bearer ${SECRETS.apiToken}` } });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    return (await res.json()) as T;
  };

  it('relay and agent run, fail where provoked, deliver, and nothing they print or log holds a secret', async () => {
    const agentCfg = join(dir, 'agent', 'agent.yaml');
    relay = new CliProcess('cloud-relay', join(dir, 'relay.yaml'), join(dir, 'relay.log'));
    relay.start(relayEnv);
    await waitForHttp(httpUrl);

    // A wrong broker password first: refused, said plainly, retried.
    agent = new CliProcess('edge-agent', agentCfg, join(dir, 'agent.log'));
    agent.start(agentEnv(SECRETS.agentWrongPassword));
    // Mosquitto answers a wrong password with "not authorized" (MQTT 3.1.1 return code 5).
    await waitFor('the refused login logged', () => agentLog().includes('a wrong transport.password'), 20_000);
    await agent.kill('SIGTERM');

    // The right one: everything is delivered; the SQL login keeps failing (no such user, wrong password).
    agent = new CliProcess('edge-agent', agentCfg, join(dir, 'agent.log'));
    agent.start(agentEnv(SECRETS.agentMqttPassword));
    await waitFor('200 records at the relay', async () => {
      const { streams } = await api<{ streams: { site: string; stream: string; last_seq: number }[] }>('/api/streams');
      return streams.find((s) => s.site === SITE && s.stream === 'orders')?.last_seq === 200;
    }, 30_000);
    await waitFor('the SQL login failure logged', () => agentLog().includes('"collector":"sql:erp"'), 20_000);
    await waitFor('the webhook failure logged (alert fired for the agent)', () => relayLog().includes('alert webhook delivery failed'), 20_000);

    // What IT runs by hand, against the running agent and the relay.
    record('edge-agent status', await runCliAsync('edge-agent', ['status', '--config', agentCfg], agentEnv(SECRETS.agentMqttPassword)));
    const json = await runCliAsync('edge-agent', ['status', '--json', '--config', agentCfg], agentEnv(SECRETS.agentMqttPassword));
    record('edge-agent status --json', json);
    expect(json.stdout).toContain('"erp"'); // the SQL collector's last error is in there
    record('edge-agent validate', runCli('edge-agent', ['validate', '--config', agentCfg], agentEnv(SECRETS.agentMqttPassword)));
    record('edge-agent sql test', runCli('edge-agent', ['sql', 'test', '--config', agentCfg], agentEnv(SECRETS.agentMqttPassword)));
    record('cloud-relay validate', runCli('cloud-relay', ['validate', '--config', join(dir, 'relay.yaml')], relayEnv));
    const wrongPass = runCli('edge-agent', ['validate', '--config', agentCfg], { AGENT_MQTT_PASSWORD: SECRETS.agentMqttPassword, AGENT_KEY_PASSPHRASE: SECRETS.wrongPassphrase });
    expect(wrongPass.status).toBe(1);
    expect(wrongPass.stderr).toMatch(/ERP_TLS_FILE: transport\.tls\.key_file \(\S+agent-enc\.key\): cannot decrypt the key: wrong transport\.tls\.passphrase/);
    record('edge-agent validate (wrong passphrase)', wrongPass);
    const relayWrong = runCli('cloud-relay', ['validate', '--config', join(dir, 'relay.yaml')], { ...relayEnv, RELAY_KEY_PASSPHRASE: SECRETS.wrongPassphrase });
    expect(relayWrong.status).toBe(1);
    record('cloud-relay validate (wrong passphrase)', relayWrong);

    await agent.kill('SIGTERM');
    await relay.kill('SIGTERM');
    outputs.push({ what: 'agent.log', text: agentLog() }, { what: 'relay.log', text: relayLog() });

    // The run was at debug level (the agent has few debug lines; the relay logs each HTTP request at
    // debug) and the provoked errors are there: the search below had something to search.
    expect(relayLog()).toMatch(/"level":20/);
    expect(agentLog()).toMatch(/"level":50[^\n]*a wrong transport\.password/);
    expect(agentLog()).toMatch(/"level":50[^\n]*"collector":"sql:erp"/);
    const all = outputs.map((o) => o.text).join('\n');
    expect(all.length).toBeGreaterThan(10_000);
    const leaks: string[] = [];
    for (const [name, value] of Object.entries({ ...SECRETS, passwordHash })) {
      for (const form of new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)])) {
        for (const o of outputs) if (o.text.includes(form)) leaks.push(`${name} in ${o.what}`);
      }
    }
    expect(leaks).toEqual([]);
  }, 120_000);
});
