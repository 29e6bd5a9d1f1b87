import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir } from '../../helpers/tmp.js';
import { freePort, waitFor } from '../../helpers/net.js';
import { relayHarness } from '../../helpers/relay-harness.js';
import { agentYaml, checkExact, dropCsvFiles, fetchAllEvents } from '../../helpers/pipeline.js';
import { buildWinPackageOffline, WinePrefix, wineBinary } from '../../helpers/wine.js';
import { WIN_NODE } from '../../../installer/package-cache.js';
import type { Relay } from '../../../cloud-relay/relay.js';
import pkg from '../../../package.json' with { type: 'json' };

// Acceptance (#15), Windows under Wine: edge-agent.exe (built here, offline) runs --version and
// validate; installed as a service (nssm, install.cmd) it runs, carries a CSV dropped on the C:
// drive to a relay on Linux loopback, stops cleanly on `net stop` (Ctrl+C: the outbox is closed),
// catches up after `net start`, keeps pending events across an upgrade, and uninstall removes the
// service but keeps C:\ProgramData\erp-edge. One prefix for the whole file, steps in order.
const wine = wineBinary();
const { dir, cleanup } = makeTempDir('erp-edge-wine-');
const relays = relayHarness();
let skipped: string | undefined;
let prefix: WinePrefix;
let pkgDir: string;
let relay: Relay | undefined;
let brokerPort: number;
let total = 0;

const SERVICE = 'erp-edge-agent';
const INSTALL = 'C:\\pkg\\install.cmd';
const startRelay = async () => (relay = await relays.startRelay({ embedded_broker: { host: '127.0.0.1', port: brokerPort }, store: { path: join(relays.dir, 'relay.db'), synchronous: 'FULL' } }));
const events = () => fetchAllEvents(relay!.httpUrl, 'site-a', 'agent-1', 'orders');

beforeAll(async () => {
  if (!wine) {
    skipped = "wine64 is not installed (Debian's wine64; scripts/ensure-test-deps.mjs installs it)";
    if (process.env.CI === 'true') throw new Error(`CI: ${skipped}`);
    console.warn(`SKIPPING the Windows service test: ${skipped}`);
    return;
  }
  const built = await buildWinPackageOffline(join(dir, 'out'));
  if ('skipped' in built) {
    skipped = built.skipped;
    console.warn(`SKIPPING the Windows service test: ${skipped}`);
    return;
  }
  console.log(`win-x64 package built with the registry unreachable: ${built.seconds.toFixed(0)} s`);
  pkgDir = built.dir;
  prefix = new WinePrefix(wine, join(dir, 'prefix'));
  const t = Date.now();
  await prefix.init();
  console.log(`Wine prefix ready (win10): ${((Date.now() - t) / 1000).toFixed(0)} s`);
  cpSync(pkgDir, prefix.c('pkg').linux, { recursive: true });
  relays.setup();
  brokerPort = await freePort();
  await startRelay();
}, 8 * 60_000);

afterAll(async () => {
  await relays.cleanup();
  await prefix?.kill();
  cleanup();
});

const logFile = () => prefix.c('ProgramData', 'erp-edge', 'logs', 'agent.log').linux;
const state = async () => /STATE\s*:\s*\d+\s+(\w+)/.exec((await prefix.run(['sc', 'query', SERVICE])).stdout)?.[1];
const untilState = (want: string) => waitFor(`the service to be ${want}`, async () => (await state()) === want, 90_000, 500);
const stopped = () => readFileSync(logFile(), 'utf8').split('\n').filter((l) => l.includes('"msg":"agent stopped"')).length;
// nssm writes the service's output to the log through a thread of its own: a line lands a moment
// after the process that wrote it has gone.
const untilStopped = (count: number) => waitFor(`the agent's clean-stop line (${count})`, () => stopped() === count, 30_000, 200);

// Bounds for a loaded 2-core VM (5-10x slower than alone): each step takes 2 to 25 s alone.
describe('edge-agent.exe under Wine', { timeout: 240_000 }, () => {
  it('runs --version on Node 22 and validates a config', async ({ skip }) => {
    if (skipped) return skip(skipped);
    const v = await prefix.run([prefix.c('pkg', 'edge-agent.exe').win, '--version']);
    expect(v.stdout).toBe(`edge-agent ${pkg.version} (node v${WIN_NODE}, win32-x64)\n`);
    // The config the service will run with: written before install, which keeps an existing one.
    const cfg = prefix.c('ProgramData', 'erp-edge', 'agent.yaml');
    mkdirSync(prefix.c('ProgramData', 'erp-edge').linux, { recursive: true });
    // At info level: the service's log then says when the agent stopped cleanly.
    const yaml = agentYaml({ url: `mqtt://127.0.0.1:${brokerPort}`, inbox: 'C:\\drop\\orders', dataDir: 'C:\\ProgramData\\erp-edge\\data' });
    writeFileSync(cfg.linux, yaml.replace(/^log_level: .*$/m, 'log_level: info'));
    const ok = await prefix.run([prefix.c('pkg', 'edge-agent.exe').win, 'validate', '--config', cfg.win]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`OK ${cfg.win}: site site-a, agent agent-1, 1 collector(s)\n`);
  });

  it('installs as a service that runs and carries dropped CSV rows to the relay, each once and in order', async ({ skip }) => {
    if (skipped) return skip(skipped);
    // Wine's service manager runs services only as LocalSystem (setting LocalService crashes nssm
    // there, `sc config obj=` fails): the installer's default (LocalService) is for Windows itself.
    const r = await prefix.run(['cmd', '/c', INSTALL, '--account', 'LocalSystem'], 120_000);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain(`${SERVICE} is running`);
    // The data folder's own access list (install.cmd: icacls /inheritance:r, SYSTEM and
    // Administrators full, the account Modify) cannot be set here: Wine's icacls is a stub that
    // changes nothing and exits 0. The script reads the list back and says so, visibly.
    expect(r.stderr).toContain('install.cmd: warning: could not confirm the access list of C:\\ProgramData\\erp-edge');
    await untilState('RUNNING');
    total += dropCsvFiles(prefix.c('drop', 'orders').linux, 2, 100);
    const got = await waitFor('every row at the relay', async () => ((await events()).length >= total ? events() : undefined), 120_000, 500);
    expect(checkExact(got, total)).toBeUndefined();
  });

  it('stops cleanly on net stop (Ctrl+C: the outbox is closed), and rows dropped meanwhile arrive after net start', async ({ skip }) => {
    if (skipped) return skip(skipped);
    const before = stopped();
    const stop = await prefix.run(['net', 'stop', SERVICE], 90_000);
    expect(stop.status, stop.stdout + stop.stderr).toBe(0);
    await untilState('STOPPED');
    // The agent's own clean-stop line (SIGINT handled, outbox closed), and SQLite's WAL folded
    // back into the file: what a closed database leaves, unlike a killed process.
    await untilStopped(before + 1);
    expect(existsSync(prefix.c('ProgramData', 'erp-edge', 'data', 'outbox.db-wal').linux)).toBe(false);
    total += dropCsvFiles(prefix.c('drop', 'orders').linux, 1, 100, total + 1, 'while-stopped');
    const start = await prefix.run(['net', 'start', SERVICE], 90_000);
    expect(start.status, start.stdout + start.stderr).toBe(0);
    await untilState('RUNNING');
    const got = await waitFor('the rows dropped while stopped', async () => ((await events()).length >= total ? events() : undefined), 120_000, 500);
    expect(checkExact(got, total)).toBeUndefined();
  });

  it('upgrades (install.cmd again replaces the executable) with pending events in the outbox, losing none', async ({ skip }) => {
    if (skipped) return skip(skipped);
    // The relay goes away: what the agent captures now stays pending in its outbox.
    await relays.stopRelay(relay!);
    const rows = dropCsvFiles(prefix.c('drop', 'orders').linux, 1, 100, total + 1, 'before-upgrade');
    total += rows;
    const exe = prefix.c('pkg', 'edge-agent.exe').win;
    const cfg = 'C:\\ProgramData\\erp-edge\\agent.yaml';
    await waitFor('the rows pending in the outbox', async () => {
      const s = await prefix.run([exe, 'status', '--json', '--config', cfg]);
      const stream = (JSON.parse(s.stdout) as { streams?: { stream: string; pending: number }[] }).streams?.find((x) => x.stream === 'orders');
      return stream !== undefined && stream.pending >= rows;
    }, 120_000, 1_000);
    // The executable carries node:sqlite only: asking it for better-sqlite3 is a typed error at the
    // outbox's first open that names the setting (a plain Error from the bundle's stub before).
    const other = await prefix.run([exe, 'outbox', 'verify', '--config', cfg], 60_000, { ERP_EDGE_SQLITE: 'better-sqlite3' });
    expect(other.status).not.toBe(0);
    expect(other.stdout + other.stderr).toContain('ERP_OUTBOX_SQLITE');
    expect(other.stdout + other.stderr).toContain('ERP_EDGE_SQLITE=better-sqlite3: this executable carries only node:sqlite');
    // The new release: another build of the executable (its bytes differ from the installed one's).
    const installed = prefix.c('Program Files', 'erp-edge', 'edge-agent.exe').linux;
    const fresh = readFileSync(join(pkgDir, 'edge-agent.exe'));
    writeFileSync(prefix.c('pkg', 'edge-agent.exe').linux, Buffer.concat([fresh, Buffer.from('\0upgrade')]));
    const before = stopped();
    // A config the new release refuses: install.cmd checks it with the new executable first and
    // stops there, with the service still running the old one (before, it stopped the service and
    // replaced the executable, then refused the config: nothing ran).
    const cfgFile = prefix.c('ProgramData', 'erp-edge', 'agent.yaml').linux;
    const good = readFileSync(cfgFile, 'utf8');
    writeFileSync(cfgFile, `${good}not_a_setting: 1\n`);
    const refused = await prefix.run(['cmd', '/c', INSTALL], 120_000);
    expect(refused.status, refused.stdout + refused.stderr).not.toBe(0);
    expect(await state()).toBe('RUNNING');
    expect(readFileSync(installed).subarray(-8).toString()).not.toBe('\0upgrade');
    expect(stopped()).toBe(before);
    expect(refused.stderr).toContain('ERP_CONFIG_INVALID');
    expect(refused.stderr).toContain('not_a_setting: unknown key');
    expect(refused.stderr).toContain('does not validate with this release: nothing was stopped or replaced');
    writeFileSync(cfgFile, good);
    // As the README says to upgrade: the same script with no options. The service keeps the account
    // it was installed with (LocalSystem here); before, the upgrade set the default LocalService
    // over it (under Wine too: the script said `account NT AUTHORITY\LocalService`).
    const r = await prefix.run(['cmd', '/c', INSTALL], 120_000);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toContain('(account kept;');
    expect(readFileSync(installed).subarray(-8).toString()).toBe('\0upgrade');
    await untilStopped(before + 1);
    await untilState('RUNNING');
    await startRelay();
    const got = await waitFor('every row after the upgrade', async () => ((await events()).length >= total ? events() : undefined), 120_000, 500);
    expect(checkExact(got, total)).toBeUndefined();
  });

  it('uninstalls: the service and the executable go, C:\\ProgramData\\erp-edge stays', async ({ skip }) => {
    if (skipped) return skip(skipped);
    const r = await prefix.run(['cmd', '/c', 'C:\\Program Files\\erp-edge\\uninstall.cmd'], 120_000);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const q = await prefix.run(['sc', 'query', SERVICE]);
    expect(q.status).not.toBe(0);
    expect(existsSync(prefix.c('Program Files', 'erp-edge', 'edge-agent.exe').linux)).toBe(false);
    expect(existsSync(prefix.c('ProgramData', 'erp-edge', 'agent.yaml').linux)).toBe(true);
    expect(existsSync(prefix.c('ProgramData', 'erp-edge', 'data', 'outbox.db').linux)).toBe(true);
    expect(readdirSync(prefix.c('ProgramData', 'erp-edge', 'logs').linux)).toContain('agent.log');
    // Nothing at error level in the service's log over the whole lifecycle but the broker's
    // absence while the relay was down for the upgrade.
    const errors = readFileSync(logFile(), 'utf8').split('\n').filter((l) => /"level":(50|60)/.test(l) && !l.includes('"msg":"broker error; retrying"'));
    expect(errors).toEqual([]);
  });
});
