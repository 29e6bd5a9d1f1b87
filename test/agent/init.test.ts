import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadAgentConfig } from '../../agent/config.js';
import { makeTempDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import pkg from '../../package.json' with { type: 'json' };
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { defaultAgentId } from '../../agent/init.js';
import { requireBinary } from '../helpers/requirements.js';

const hasScript = requireBinary('script', 'sudo apt-get install -y bsdutils (script(1) gives init a terminal)');

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir()));
afterEach(() => cleanup());

describe('edge-agent --version', () => {
  it('prints the release from package.json and the Node.js it runs on', () => {
    const r = runCli('edge-agent', ['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`edge-agent ${pkg.version} (node ${process.version}, ${process.platform}-${process.arch})\n`);
  });
});

describe('edge-agent init', () => {
  it('writes a commented starter config from the flags that `validate` accepts', () => {
    const file = join(dir, 'etc', 'agent.yaml');
    const r = runCli('edge-agent', ['init', '--config', file, '--site', 'wh-7', '--agent', 'dock-2', '--broker', 'mqtts://mqtt.example.com:8883']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/^# erp-edge agent config/);
    expect(statSync(file).mode & 0o777).toBe(0o640);

    const v = runCli('edge-agent', ['validate', '--config', file]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toBe(`OK ${file}: site wh-7, agent dock-2, 1 collector(s)\n`);
    const cfg = loadAgentConfig(file, { env: {} });
    expect(cfg).toMatchObject({ site: 'wh-7', agent: 'dock-2', data_dir: join(dir, 'etc', 'data'), transport: { url: 'mqtts://mqtt.example.com:8883' } });
    expect(cfg.collectors).toEqual([expect.objectContaining({ type: 'file-drop', name: 'orders', path: './data/inbox/orders' })]);
  });

  it('puts state and the drop folder where the service keeps them (--data-dir, --inbox)', () => {
    const file = join(dir, 'agent.yaml');
    const r = runCli('edge-agent', ['init', '-c', file, '--site', 's', '--agent', 'a', '--broker', 'mqtt://h:1883', '--data-dir', '/var/lib/erp-edge']);
    expect(r.status).toBe(0);
    expect(loadAgentConfig(file, { env: {} })).toMatchObject({ data_dir: '/var/lib/erp-edge', collectors: [{ path: '/var/lib/erp-edge/inbox/orders' }] });
    runCli('edge-agent', ['init', '-c', file, '--site', 's', '--agent', 'a', '--broker', 'mqtt://h:1883', '--inbox', '/srv/erp/out', '--force']);
    expect(loadAgentConfig(file, { env: {} }).collectors[0]).toMatchObject({ path: '/srv/erp/out' });
  });

  it('refuses to replace an existing file unless --force', () => {
    const file = join(dir, 'agent.yaml');
    writeFileSync(file, 'mine\n');
    const args = ['init', '--config', file, '--site', 's', '--agent', 'a', '--broker', 'mqtt://h:1883'];
    const r = runCli('edge-agent', args);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('already exists; pass --force');
    expect(readFileSync(file, 'utf8')).toBe('mine\n');
    expect(runCli('edge-agent', [...args, '--force']).status).toBe(0);
    expect(runCli('edge-agent', ['validate', '--config', file]).status).toBe(0);
  });

  it('says which answers are missing when it cannot ask (no terminal), and writes nothing', () => {
    const file = join(dir, 'agent.yaml');
    const r = runCli('edge-agent', ['init', '--config', file, '--agent', 'a']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('init needs --site, --broker');
    expect(existsSync(file)).toBe(false);
  });

  it('refuses a site or agent that cannot be an MQTT topic level, and a broker that is not a URL', () => {
    const file = join(dir, 'agent.yaml');
    const bad = (flags: string[]) => runCli('edge-agent', ['init', '--config', file, '--site', 's', '--agent', 'a', '--broker', 'mqtt://h:1883', ...flags]);
    expect(bad(['--site', 'wh/1']).stderr).toContain('--site "wh/1": must be letters, digits');
    expect(bad(['--agent', '#']).stderr).toContain('--agent "#": must be letters');
    expect(bad(['--broker', 'http://h']).stderr).toContain('must be an mqtt://');
    expect(existsSync(file)).toBe(false);
  });

  it.skipIf(!hasScript)('asks on a terminal for what the flags do not give, again after a wrong answer, with the host name as the agent id offered', () => {
    const file = join(dir, 'agent.yaml');
    const offered = defaultAgentId(); // undefined where the host name cannot be a topic level
    const bin = resolve(import.meta.dirname, '../../bin/edge-agent.js');
    // script(1) runs init on a pseudo-terminal; the answers are typed ahead: a bad site, a good one,
    // Enter for the offered agent id, the broker.
    const r = spawnSync('script', ['-qec', `${process.execPath} ${bin} init --config ${file}`, '/dev/null'], {
      input: `wh/1\nwh-1\n${offered ? '' : 'box-1'}\nmqtt://h:1883\n`,
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('Site (e.g. the warehouse code): ');
    expect(r.stdout).toContain('must be letters, digits');
    expect(r.stdout).toContain(`Agent id (unique within the site)${offered ? ` [${offered}]` : ''}: `);
    expect(loadAgentConfig(file, { env: {} })).toMatchObject({ site: 'wh-1', agent: offered ?? 'box-1', transport: { url: 'mqtt://h:1883' } });
  });
});
