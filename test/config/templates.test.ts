import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadAgentConfig } from '../../agent/config.js';
import { collectorKinds } from '../../agent/collectors/registry.js';
import { loadRelayConfig } from '../../cloud-relay/config.js';
import { runCli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

/** The configuration templates a site starts from (config/*.template.yaml), checked as shipped and with their examples uncommented. */
const CONFIG = resolve(import.meta.dirname, '../../config');
const AGENT = join(CONFIG, 'agent.template.yaml');
const RELAYS = [join(CONFIG, 'relay.template.yaml'), join(CONFIG, 'relay-embedded.template.yaml')];

/** Secrets the commented examples read from the environment (nothing in the templates defaults them). */
const SQL_ENV = { ERP_PG_PASSWORD: 'pg-pw', ERP_MYSQL_PASSWORD: 'my-pw', ERP_MSSQL_PASSWORD: 'ms-pw', SCANNER_TOKEN_HH01: 'hh01-token-0123456789' };
/** The CLI's environment: a service manager's STATE_DIRECTORY would move data_dir; the test sets none. */
const CLEAN = { STATE_DIRECTORY: '' };

interface Example {
  type: string;
  /** Line numbers (0-based) of the commented example. */
  lines: number[];
}

/** Commented collector examples: a `  #- type: X` line and the `  #  ` lines under it. */
function examples(lines: string[]): Example[] {
  const found: Example[] = [];
  lines.forEach((line, i) => {
    const m = /^ {2}#- type: (\S+)/.exec(line);
    if (m) found.push({ type: m[1]!, lines: [i] });
    else if (found.length && /^ {2}# {2}/.test(line) && found.at(-1)!.lines.at(-1) === i - 1) found.at(-1)!.lines.push(i);
  });
  return found;
}

/** The template with the given examples uncommented (the `#` at column 3 removed, as a user would). */
function uncomment(lines: string[], chosen: Example[]): string {
  const out = [...lines];
  for (const ex of chosen) for (const i of ex.lines) out[i] = `  ${out[i]!.slice(3)}`;
  return out.join('\n');
}

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir()));
afterEach(() => cleanup());

describe('agent template (config/agent.template.yaml)', () => {
  const text = readFileSync(AGENT, 'utf8');
  const lines = text.split('\n');
  const found = examples(lines);

  it('passes `edge-agent validate` as shipped', () => {
    const r = runCli('edge-agent', ['validate', '--config', AGENT], CLEAN);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^OK .*agent\.template\.yaml: site my-site, agent agent-01, 1 collector\(s\)/);
    expect(r.status).toBe(0);
  });

  it('shows every registered collector kind as a commented example', () => {
    for (const kind of collectorKinds) {
      const heading = lines.find((l) => l.startsWith(`  # ── ${kind.type}`));
      expect(heading, `no section for collector kind ${kind.type}`).toBeDefined();
      expect(found.map((e) => e.type).concat('file-drop')).toContain(kind.type);
    }
    // Every SQL driver has an example.
    const drivers = found.filter((e) => e.type === 'sql').map((e) => lines.slice(e.lines[0], e.lines.at(-1)! + 1).join('\n').match(/#  driver: (\w+)/)?.[1]);
    expect(drivers).toEqual(['pg', 'mysql', 'mssql']);
    expect(found.map((e) => e.type)).toEqual(['file-drop', 'sql', 'sql', 'sql', 'synthetic', 'scanner-tcp', 'scanner-serial', 'scanner-ws', 'schedule']);
  });

  it('each commented example, uncommented alone, loads as the collector it shows', () => {
    for (const ex of found) {
      const path = join(dir, 'agent.yaml');
      writeFileSync(path, uncomment(lines, [ex]));
      const cfg = loadAgentConfig(path, { env: { ...SQL_ENV } });
      expect(cfg.collectors).toHaveLength(2);
      expect(cfg.collectors[1]!.type).toBe(ex.type);
    }
  });

  it('passes `edge-agent validate` with every example uncommented at once', () => {
    const path = join(dir, 'agent.yaml');
    writeFileSync(path, uncomment(lines, found));
    const r = runCli('edge-agent', ['validate', '--config', path], { ...CLEAN, ...SQL_ENV });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/OK .*: site my-site, agent agent-01, 10 collector\(s\)/);
    expect(r.status).toBe(0);
    const cfg = loadAgentConfig(path, { env: SQL_ENV });
    const sql = cfg.collectors.filter((c) => c.type === 'sql');
    expect(sql.flatMap((c) => c.tables.map((t) => t.mode))).toEqual(['incremental', 'query', 'incremental', 'change_tracking', 'rowversion', 'cdc']);
    expect(sql[0]!.logical?.tables.map((t) => t.table)).toEqual(['public.orders']);
  });

  it('keeps the outbox where systemd says (STATE_DIRECTORY), else in data/ next to the file', () => {
    expect(loadAgentConfig(AGENT, { env: {} }).data_dir).toBe(join(CONFIG, 'data'));
    expect(loadAgentConfig(AGENT, { env: { STATE_DIRECTORY: '/var/lib/erp-edge' } }).outboxPath).toBe('/var/lib/erp-edge/outbox.db');
  });
});

describe('relay templates (config/relay.template.yaml: external broker; relay-embedded.template.yaml)', () => {
  it('each passes `cloud-relay validate` as shipped once the API token is set, and refuses to pass without it', () => {
    for (const path of RELAYS) {
      const ok = runCli('cloud-relay', ['validate', '--config', path], { ...CLEAN, ERP_EDGE_API_TOKEN: 'a'.repeat(32) });
      expect(ok.stderr).toBe('');
      expect(ok.stdout).toBe(`OK ${path}\n`);
      expect(ok.status).toBe(0);
      // No default token ships: a relay started from a template without one must not be open or guessable.
      // (Set but empty is what a unit without the variable's line gives here: the token is then too short.)
      const missing = runCli('cloud-relay', ['validate', '--config', path], { ...CLEAN, ERP_EDGE_API_TOKEN: '' });
      expect(missing.stderr).toMatch(/auth\.tokens\[0\]\.token: use at least 16 characters/);
      expect(missing.status).toBe(1);
    }
  });

  it('one points at an external broker, the other runs the embedded one; both keep the store where systemd says', () => {
    const env = { ERP_EDGE_API_TOKEN: 'a'.repeat(32), STATE_DIRECTORY: '/var/lib/erp-edge' };
    const [external, embedded] = RELAYS.map((p) => loadRelayConfig(p, env));
    expect(external!.broker).toMatchObject({ url: 'mqtts://mqtt.example.com:8883', username: 'erp-edge-relay' });
    expect(embedded!.broker).toBe('embedded');
    expect(embedded!.embedded_broker).toEqual({ host: '127.0.0.1', port: 11883 });
    for (const cfg of [external!, embedded!]) expect(cfg.store.type === 'postgres' ? '' : cfg.store.path).toBe('/var/lib/erp-edge/relay.db');
  });
});
