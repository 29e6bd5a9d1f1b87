import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAgentConfig } from '../../agent/config.js';
import { isErpEdgeError } from '../../common/errors.js';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort } from '../helpers/net.js';
import { runCli, runCliFor } from '../helpers/cli.js';
import { testOutboxOptions } from '../helpers/outbox.js';

const VALID = `site: wh-1
agent: a-1
data_dir: ./data
transport:
  url: mqtt://127.0.0.1:11883
  password: \${MQTT_PW}
collectors:
  - type: file-drop
    name: orders
    path: ./in/orders
  - type: file-drop
    name: stock
    path: ./in/stock
    format: jsonl
`;

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir()));
afterEach(() => cleanup());

function write(text: string): string {
  const p = join(dir, 'agent.yaml');
  writeFileSync(p, text);
  return p;
}

function loadError(text: string, env: NodeJS.ProcessEnv = { MQTT_PW: 'x' }): string {
  const p = write(text);
  try {
    loadAgentConfig(p, { env });
  } catch (err) {
    if (isErpEdgeError(err)) return err.message;
    throw err;
  }
  throw new Error('config was accepted');
}

describe('agent config', () => {
  it('loads the sample config shipped in config/', () => {
    const cfg = loadAgentConfig(join(import.meta.dirname, '../../config/agent.example.yaml'), { env: {} });
    expect(cfg.collectors.map((c) => c.name)).toEqual(['orders', 'stock']);
    expect(cfg.transport.url).toBe('mqtt://127.0.0.1:11883');
  });

  it('substitutes ${VAR} and resolves paths from the config file folder', () => {
    const cfg = loadAgentConfig(write(VALID), { env: { MQTT_PW: 's3cret' } });
    expect(cfg.transport.password).toBe('s3cret');
    expect(cfg.outboxPath).toBe(join(dir, 'data', 'outbox.db'));
    expect(cfg.outbox).toMatchObject({ synchronous: 'FULL', cap_policy: 'block', replay_window: 3_600_000 });
    expect(cfg.collectors[1]).toMatchObject({ type: 'file-drop', format: 'jsonl', stable_time: 2000 });
  });

  it('a missing key names file, line, column and key path', () => {
    const msg = loadError(VALID.replace('    path: ./in/stock\n', ''));
    expect(msg).toBe(`${join(dir, 'agent.yaml')}:11:5 collectors[1].path: required`);
  });

  it('a wrong type names file, line, column and key path', () => {
    const msg = loadError(VALID.replace('    name: orders', '    name: orders\n    batch_size: lots'));
    expect(msg).toBe(`${join(dir, 'agent.yaml')}:10:17 collectors[0].batch_size: expected number, got string`);
  });

  it('an unknown key (a typo) is an error naming the key', () => {
    const msg = loadError(VALID.replace('data_dir: ./data', 'data_dir: ./data\noutbox:\n  max_byte: 1GB'));
    expect(msg).toMatch(new RegExp(`^${join(dir, 'agent.yaml')}:5:3 outbox\\.max_byte: unknown key`));
  });

  it('an unknown collector type is refused at its line', () => {
    const msg = loadError(VALID.replace('  - type: file-drop\n    name: stock', '  - type: ftp-drop\n    name: stock'));
    expect(msg).toContain(`${join(dir, 'agent.yaml')}:11:`);
    expect(msg).toContain('collectors[1].type');
  });

  it('a missing environment variable names the variable, never a value', () => {
    const msg = loadError(VALID, {});
    expect(msg).toContain('transport.password: environment variable MQTT_PW is not set');
  });

  it('duplicate collector names are refused', () => {
    expect(loadError(VALID.replace('name: stock', 'name: orders'))).toContain('collectors[1].name: duplicate collector name "orders"');
  });
});

describe('overlapping file-drop collectors', () => {
  /** Two file-drop collectors, "orders" and "all-csv", with the given keys (indented here). */
  const twoCollectors = (a: string[], b: string[]) =>
    [
      'site: wh-1',
      'agent: a-1',
      'data_dir: ./data',
      'transport:',
      '  url: mqtt://127.0.0.1:11883',
      'collectors:',
      '  - type: file-drop',
      '    name: orders',
      ...a.map((l) => `    ${l}`),
      '  - type: file-drop', // line 11 when `a` has two lines
      '    name: all-csv',
      ...b.map((l) => `    ${l}`),
      '',
    ].join('\n');
  const accepted = (text: string) => loadAgentConfig(write(text), { env: {} }).collectors.length;

  it('refuses *.csv and orders* in one folder, at the second collector, naming both and a file both would take', () => {
    const msg = loadError(twoCollectors(['path: ./in', "include: ['orders*']"], ['path: in/', "include: ['*.csv']"]));
    expect(msg).toBe(
      `${join(dir, 'agent.yaml')}:13:11 collectors[1].path: collectors "orders" and "all-csv" overlap: both watch the same folder (./in and in/) ` +
        'and would both take a file named "orders.csv" (give each its own folder, or include/exclude patterns that keep them apart)',
    );
  });

  it('patterns ignore case by default: ORDERS.CSV overlaps *.csv', () => {
    const msg = loadError(twoCollectors(['path: ./in', "include: ['ORDERS.CSV']"], ['path: ./in', "include: ['*.csv']"]));
    expect(msg).toContain('collectors "orders" and "all-csv" overlap: both watch ./in and would both take a file named "ORDERS.CSV"');
  });

  it('accepts the same patterns in different folders', () => {
    expect(accepted(twoCollectors(['path: ./in/orders', "include: ['*.csv']"], ['path: ./in/stock', "include: ['*.csv']"]))).toBe(2);
  });

  it('accepts *.csv and *.tsv in one folder', () => {
    expect(accepted(twoCollectors(['path: ./in', "include: ['*.csv']"], ['path: ./in', "include: ['*.tsv']"]))).toBe(2);
  });

  it('an exclude that removes the shared names removes the overlap', () => {
    const a = ['path: ./in', "include: ['orders*']"];
    expect(loadError(twoCollectors(a, ['path: ./in', "include: ['*.csv']"]))).toContain('overlap');
    expect(accepted(twoCollectors(a, ['path: ./in', "include: ['*.csv']", "exclude: ['orders*']"]))).toBe(2);
  });

  it('case_sensitive: true on both keeps *.csv and *.CSV apart; on one only, they overlap', () => {
    const csv = ['path: ./in', "include: ['*.csv']"];
    const upper = ['path: ./in', "include: ['*.CSV']"];
    expect(accepted(twoCollectors([...csv, 'case_sensitive: true'], [...upper, 'case_sensitive: true']))).toBe(2);
    expect(loadError(twoCollectors([...csv, 'case_sensitive: true'], upper))).toContain('would both take a file named "x.csv"');
  });
});

describe('edge-agent CLI', () => {
  it('validate prints OK for a good file and exits 0', () => {
    const r = runCli('edge-agent', ['validate', '--config', write(VALID)], { MQTT_PW: 'x' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^OK /);
  });

  it('validate prints the fault and exits non-zero for a bad file', () => {
    const r = runCli('edge-agent', ['validate', '--config', write(VALID.replace('site: wh-1\n', ''))], { MQTT_PW: 'x' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`ERP_CONFIG_INVALID: ${join(dir, 'agent.yaml')}:1:1 site: required`);
  });

  it('validate names two overlapping collectors and a file both would take', () => {
    const text = VALID.replace('path: ./in/stock', 'path: ./in/orders').replace('format: jsonl', "format: jsonl\n    include: ['*.JSONL', 'orders*']");
    // A password of its own: messages are scrubbed of env values, and 'x' is in the example name.
    const r = runCli('edge-agent', ['validate', '--config', write(text)], { MQTT_PW: 'pw-not-in-messages' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(
      `ERP_CONFIG_INVALID: ${join(dir, 'agent.yaml')}:13:11 collectors[1].path: collectors "orders" and "stock" overlap: both watch ./in/orders and would both take a file named "x.JSONL"`,
    );
  });

  it('status prints per-stream pending, oldest pending age and last ack', async () => {
    const { Outbox } = await import('../../agent/outbox/outbox.js');
    const p = write(VALID);
    mkdirSync(join(dir, 'data'));
    const ob = new Outbox(testOutboxOptions(join(dir, 'data', 'outbox.db')));
    ob.append('orders', [1, 2, 3].map((n) => ({ id: `r${n}`, source: 't', data: n, ts: Date.now() - 5_000 })));
    ob.ack('orders', 1);
    ob.close();
    const r = runCli('edge-agent', ['status', '--config', p], { MQTT_PW: 'x' });
    expect(r.status).toBe(0);
    const streams = r.stdout.split('\n\nstreams\n')[1]!;
    const line = streams.split('\n').find((l) => l.startsWith('orders\t'))!.split('\t');
    expect(line[1]).toBe('2'); // pending
    expect(Number(line[3])).toBeGreaterThanOrEqual(5); // oldest pending age, seconds
    expect(line[4]).toBe('3'); // last seq
    expect(line[5]).toBe('1'); // acked seq
    expect(line[6]).not.toBe('never');
  });

  it('never logs a password from the config, even at trace level and on connection errors', async () => {
    const secret = 'Pa55-w0rd-XYZZY';
    const closed = await freePort(); // nothing listens: the agent logs connection errors over and over
    const text = VALID.replace('log_level', 'x')
      .replace('data_dir: ./data', 'data_dir: ./data\nlog_level: trace\nhttp:\n  listen: 127.0.0.1:0')
      .replace('url: mqtt://127.0.0.1:11883', `url: mqtt://erp:${secret}@127.0.0.1:${closed}\n  username: erp`);
    const p = write(text);
    mkdirSync(join(dir, 'in', 'orders'), { recursive: true });
    writeFileSync(join(dir, 'in', 'orders', 'a.csv'), 'sku,qty\nA,1\n');
    const r = await runCliFor('edge-agent', ['run', '--config', p], 20_000, { MQTT_PW: secret }, (out) => out.includes('file ingested') && out.includes('broker error'));
    const out = r.stdout + r.stderr;
    expect(out).toContain('"msg":"agent started"'); // it really ran and logged
    expect(out).toContain('file ingested');
    expect(out).not.toContain(secret);
  });
});
