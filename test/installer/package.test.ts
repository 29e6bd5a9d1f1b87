import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from '../helpers/net.js';
import { agentYaml, checkExact, dropCsvFiles, fetchAllEvents, relayYaml } from '../helpers/pipeline.js';
import { buildPackagedOffline, PackagedProcess, pathWithoutNode } from '../helpers/packaged.js';
import { LINUX_NODE } from '../../installer/package-cache.js';
import pkg from '../../package.json' with { type: 'json' };

// Acceptance (#15): the linux-x64 executables, built here with the registry unreachable, run
// `validate` and carry a file drop to the relay on a machine with no Node.js on PATH.
const { dir, cleanup } = makeTempDir('erp-edge-package-');
let built: Awaited<ReturnType<typeof buildPackagedOffline>>;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  built = await buildPackagedOffline(join(dir, 'out'));
  if (built) console.log(`packaging with the registry unreachable: ${built.seconds.toFixed(0)} s`);
  // What a service gets: no NODE_OPTIONS, no npm variables, no Node.js anywhere on PATH.
  env = { PATH: pathWithoutNode(join(dir, 'bin')), HOME: join(dir, 'home'), LANG: 'C.UTF-8' };
}, 18 * 60_000);
afterAll(() => cleanup());

const exe = (name: 'edge-agent' | 'cloud-relay') => join(built!.dir, name);
function runPackaged(name: 'edge-agent' | 'cloud-relay', args: string[]) {
  return spawnSync(exe(name), args, { env, encoding: 'utf8', timeout: 30_000, cwd: dir });
}

describe('packaged linux-x64 executables', () => {
  it('finds no Node.js on the PATH the executables run with', ({ skip }) => {
    if (!built) skip();
    expect(spawnSync('sh', ['-c', 'command -v node nodejs npm'], { env, encoding: 'utf8' }).stdout).toBe('');
  });

  it('runs --version on the embedded Node, init and validate', ({ skip }) => {
    if (!built) skip();
    expect(runPackaged('edge-agent', ['--version']).stdout).toBe(`edge-agent ${pkg.version} (node v${LINUX_NODE}, linux-x64)\n`);
    const cfg = join(dir, 'init', 'agent.yaml');
    const init = runPackaged('edge-agent', ['init', '--config', cfg, '--site', 'wh-1', '--agent', 'box-1', '--broker', 'mqtt://127.0.0.1:1883']);
    expect(init.stderr).toBe('');
    const v = runPackaged('edge-agent', ['validate', '--config', cfg]);
    expect(v.stderr).toBe('');
    expect(v.stdout).toBe(`OK ${cfg}: site wh-1, agent box-1, 1 collector(s)\n`);
    // A broken config fails with the file:line:col of the fault, as from source.
    writeFileSync(cfg, readFileSync(cfg, 'utf8').replace('format: csv', 'format: xls'));
    const bad = runPackaged('edge-agent', ['validate', '--config', cfg]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/agent\.yaml:\d+:\d+ collectors\[0\]\.format/);
  });

  it('runs alone, with nothing beside it: the SQLite binding it carries is written under $HOME/.cache once and loaded', async ({ skip }) => {
    if (!built) skip();
    const alone = join(dir, 'alone');
    mkdirSync(alone);
    copyFileSync(exe('edge-agent'), join(alone, 'edge-agent'));
    const home = join(dir, 'alone-home');
    const aloneEnv = { ...env, HOME: home };
    const cfg = join(alone, 'agent.yaml');
    writeFileSync(cfg, agentYaml({ url: 'mqtt://127.0.0.1:1', inbox: join(alone, 'inbox'), dataDir: join(alone, 'data') }));
    const agent = new PackagedProcess(join(alone, 'edge-agent'), ['run', '--config', cfg], aloneEnv, join(dir, 'alone.log'));
    try {
      const status = await waitFor('the lone executable to run its outbox', () => {
        const r = spawnSync(join(alone, 'edge-agent'), ['status', '--json', '--config', cfg], { env: aloneEnv, encoding: 'utf8' });
        const s = r.status === 0 ? (JSON.parse(r.stdout) as { running: boolean; epoch: string }) : undefined;
        return s?.running ? s : undefined;
      }, 30_000, 200);
      expect(status.epoch).toMatch(/^[0-9a-f-]{36}$/);
    } finally {
      expect(await agent.stop()).toBe(0);
    }
    const native = readdirSync(join(home, '.cache', 'erp-edge-native'));
    expect(native).toHaveLength(1);
    expect(statSync(join(home, '.cache', 'erp-edge-native', native[0]!, 'better_sqlite3.node')).mode & 0o777).toBe(0o600);
  });

  it('carries dropped CSV rows to the packaged relay, each row once and in order, and both stop cleanly on SIGTERM', async ({ skip }) => {
    if (!built) skip();
    const work = join(dir, 'flow');
    const [brokerPort, httpPort] = [await freePort(), await freePort()];
    const relayCfg = join(dir, 'relay.yaml');
    writeFileSync(relayCfg, relayYaml({ dbPath: join(work, 'relay.db'), httpPort, embeddedPort: brokerPort }));
    const relay = new PackagedProcess(exe('cloud-relay'), ['run', '--config', relayCfg], env, join(dir, 'relay.log'));
    const agentCfg = join(dir, 'agent.yaml');
    const inbox = join(work, 'inbox');
    writeFileSync(agentCfg, agentYaml({ url: `mqtt://127.0.0.1:${brokerPort}`, inbox, dataDir: join(work, 'agent-data') }));
    let agent: PackagedProcess | undefined;
    try {
      const http = `http://127.0.0.1:${httpPort}`;
      await waitFor('the packaged relay to answer', async () => (await fetch(`${http}/healthz`)).ok, 30_000, 100);
      // The dashboard is inlined in the bundle: the relay serves it with no files beside it.
      expect(await (await fetch(`${http}/`)).text()).toContain('<html');
      agent = new PackagedProcess(exe('edge-agent'), ['run', '--config', agentCfg], env, join(dir, 'agent.log'));
      const rows = dropCsvFiles(inbox, 3, 400);
      const events = await waitFor('every row at the relay', async () => {
        const e = await fetchAllEvents(http, 'site-a', 'agent-1', 'orders');
        return e.length >= rows ? e : undefined;
      }, 45_000, 200);
      expect(checkExact(events, rows)).toBeUndefined();
      expect(await agent.stop()).toBe(0);
      expect(await relay.stop()).toBe(0);
    } finally {
      await agent?.stop();
      await relay.stop();
    }
    const logs = readFileSync(join(dir, 'agent.log'), 'utf8') + readFileSync(join(dir, 'relay.log'), 'utf8');
    expect(logs).not.toMatch(/"level":(50|60)/);
  });
});
