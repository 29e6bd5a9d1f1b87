import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFileSync, copyFileSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeTempDir } from '../../helpers/tmp.js';
import { freePort, waitFor } from '../../helpers/net.js';
import { agentYaml, checkExact, dropCsvFiles, fetchAllEvents, relayYaml } from '../../helpers/pipeline.js';
import { buildPackagedOffline, PackagedProcess } from '../../helpers/packaged.js';
import { requireBinary } from '../../helpers/requirements.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const INSTALLER = join(ROOT, 'installer', 'linux');
const UNIT = join(INSTALLER, 'erp-edge-agent.service');
const SYSTEMD = 'sudo apt-get install -y systemd (systemd-analyze, systemd-sysusers)';
const hasSystemd = requireBinary('systemd-analyze', SYSTEMD) && requireBinary('systemd-sysusers', SYSTEMD);

const { dir, cleanup } = makeTempDir('erp-edge-install-');
let built: Awaited<ReturnType<typeof buildPackagedOffline>>;
beforeAll(async () => {
  if (hasSystemd) built = await buildPackagedOffline(join(dir, 'out'));
}, 6 * 60_000);
afterAll(() => cleanup());

function sh(script: string, args: string[]) {
  const r = spawnSync(join(INSTALLER, script), args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${script} ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** Every entry below `root`: type, mode, owner, group, and the content's hash or the link's target. */
function tree(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const s = lstatSync(p);
      const what = s.isSymbolicLink() ? `-> ${readlinkSync(p)}` : s.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex').slice(0, 16) : 'dir';
      out.push(`${p.slice(root.length)} ${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${what}`);
      if (s.isDirectory()) walk(p);
    }
  };
  walk(root);
  return out;
}

function entry(root: string, path: string): { mode: string; owner: string } {
  const s = lstatSync(join(root, path));
  return { mode: (s.mode & 0o7777).toString(8), owner: `${s.uid}:${s.gid}` };
}

/** The folder install.sh is run from: what `npm run package` writes (executable, addon, installer files). */
function fromDir(name: string): string {
  const from = join(dir, name);
  mkdirSync(from, { recursive: true });
  for (const f of ['edge-agent', 'better_sqlite3.node']) copyFileSync(join(built!.dir, f), join(from, f));
  cpSync(INSTALLER, from, { recursive: true });
  return from;
}

describe.skipIf(!hasSystemd)('the systemd unit', () => {
  it('scores 2.0 or lower on systemd-analyze security', () => {
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', UNIT], { encoding: 'utf8' });
    const m = /Overall exposure level for erp-edge-agent\.service: (\d+\.\d+)/.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    const score = Number(m![1]);
    console.log(`systemd-analyze security --offline=true erp-edge-agent.service: ${score} (Debian: redis-server 1.2 … mosquitto 9.6)`);
    console.log(r.stdout.split('\n').filter((l) => l.startsWith('✗')).map((l) => l.replace(/\s{2,}/g, '  ')).join('\n'));
    expect(score).toBeLessThanOrEqual(2.0);
  });
});

describe.skipIf(!hasSystemd)('install.sh and uninstall.sh into a fake root', () => {
  const fake = join(dir, 'root');
  let uid = '';
  let gid = '';

  it('creates the user, the folders, the executable, the config and the unit, with their owners and modes', ({ skip }) => {
    if (!built) skip();
    sh('install.sh', ['--root', fake, '--from', fromDir('from-1'), '--site', 'wh-1', '--agent', 'box-1', '--broker', 'mqtt://127.0.0.1:1883', '--rw-path', '/srv/erp/out']);
    // The user, as systemd-sysusers wrote it into the fake root: a system account without login.
    const passwd = readFileSync(join(fake, 'etc/passwd'), 'utf8');
    const m = /^erp-edge:x:(\d+):(\d+):erp-edge agent:\/var\/lib\/erp-edge:\/usr\/sbin\/nologin$/m.exec(passwd);
    expect(m, passwd).not.toBeNull();
    [uid, gid] = [m![1]!, m![2]!];
    expect(Number(uid)).toBeLessThan(1000);
    expect(readFileSync(join(fake, 'etc/group'), 'utf8')).toMatch(new RegExp(`^erp-edge:x:${gid}:$`, 'm'));

    expect(entry(fake, 'opt/erp-edge/bin/edge-agent')).toEqual({ mode: '755', owner: '0:0' });
    expect(entry(fake, 'opt/erp-edge/bin/better_sqlite3.node')).toEqual({ mode: '644', owner: '0:0' });
    expect(readlinkSync(join(fake, 'usr/local/bin/edge-agent'))).toBe('/opt/erp-edge/bin/edge-agent');
    expect(entry(fake, 'var/lib/erp-edge')).toEqual({ mode: '750', owner: `${uid}:${gid}` });
    expect(entry(fake, 'etc/erp-edge')).toEqual({ mode: '750', owner: `0:${gid}` });
    expect(entry(fake, 'etc/erp-edge/agent.yaml')).toEqual({ mode: '640', owner: `0:${gid}` });
    expect(entry(fake, 'etc/systemd/system/erp-edge-agent.service')).toEqual({ mode: '644', owner: '0:0' });
    expect(readFileSync(join(fake, 'etc/systemd/system/erp-edge-agent.service'), 'utf8')).toBe(readFileSync(UNIT, 'utf8'));
    expect(readFileSync(join(fake, 'etc/systemd/system/erp-edge-agent.service.d/rw-paths.conf'), 'utf8')).toMatch(/^ReadWritePaths=\/srv\/erp\/out$/m);
    expect(entry(fake, 'usr/lib/sysusers.d/erp-edge.conf')).toEqual({ mode: '644', owner: '0:0' });

    // The starter config names the service's state folder and passes `validate`.
    const cfg = join(fake, 'etc/erp-edge/agent.yaml');
    expect(readFileSync(cfg, 'utf8')).toMatch(/^data_dir: "\/var\/lib\/erp-edge"/m);
    const v = spawnSync(join(fake, 'opt/erp-edge/bin/edge-agent'), ['validate', '--config', cfg], { encoding: 'utf8' });
    expect(v.stdout).toBe(`OK ${cfg}: site wh-1, agent box-1, 1 collector(s)\n`);
  });

  it('passes systemd-analyze verify as installed (its ExecStart resolved in the fake root)', ({ skip }) => {
    if (!built) skip();
    // verify loads the units the service depends on (sysinit.target, …): a copy of this machine's.
    const withUnits = join(dir, 'verify-root');
    cpSync(fake, withUnits, { recursive: true, verbatimSymlinks: true });
    cpSync('/usr/lib/systemd/system', join(withUnits, 'usr/lib/systemd/system'), { recursive: true, verbatimSymlinks: true });
    const r = spawnSync('systemd-analyze', ['verify', `--root=${withUnits}`, '/etc/systemd/system/erp-edge-agent.service'], { encoding: 'utf8' });
    // verify exits 0 on settings it ignores: anything it prints is a fault.
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  it('changes nothing when run twice', ({ skip }) => {
    if (!built) skip();
    const before = tree(fake);
    const r = sh('install.sh', ['--root', fake, '--from', fromDir('from-1')]);
    expect(r.stdout).not.toContain('installed /');
    expect(tree(fake)).toEqual(before);
  });

  it('upgrades: replaces the executable, keeps the config and the state', ({ skip }) => {
    if (!built) skip();
    const cfg = join(fake, 'etc/erp-edge/agent.yaml');
    appendFileSync(cfg, '# edited at the site\n');
    const state = join(fake, 'var/lib/erp-edge/outbox.db');
    writeFileSync(state, 'not really an outbox');
    const [cfgText, oldIno] = [readFileSync(cfg, 'utf8'), statSync(join(fake, 'opt/erp-edge/bin/edge-agent')).ino];
    const from = fromDir('from-2');
    appendFileSync(join(from, 'edge-agent'), Buffer.from([0])); // a "new release": different bytes
    sh('install.sh', ['--root', fake, '--from', from]);
    const exe = join(fake, 'opt/erp-edge/bin/edge-agent');
    expect(readFileSync(exe).equals(readFileSync(join(from, 'edge-agent')))).toBe(true);
    // Replaced by a rename, not rewritten: a running agent keeps executing its old file.
    expect(statSync(exe).ino).not.toBe(oldIno);
    expect(readFileSync(cfg, 'utf8')).toBe(cfgText);
    expect(readFileSync(state, 'utf8')).toBe('not really an outbox');
  });

  it('uninstall.sh keeps config, state and user; --purge removes them', ({ skip }) => {
    if (!built) skip();
    sh('uninstall.sh', ['--root', fake]);
    for (const gone of ['opt/erp-edge', 'usr/local/bin/edge-agent', 'etc/systemd/system/erp-edge-agent.service', 'etc/systemd/system/erp-edge-agent.service.d']) {
      expect(existsSync(join(fake, gone)), gone).toBe(false);
    }
    for (const kept of ['etc/erp-edge/agent.yaml', 'var/lib/erp-edge/outbox.db', 'usr/lib/sysusers.d/erp-edge.conf']) expect(existsSync(join(fake, kept)), kept).toBe(true);
    expect(readFileSync(join(fake, 'etc/passwd'), 'utf8')).toMatch(/^erp-edge:/m);

    sh('uninstall.sh', ['--root', fake, '--purge']);
    for (const gone of ['etc/erp-edge', 'var/lib/erp-edge', 'usr/lib/sysusers.d/erp-edge.conf']) expect(existsSync(join(fake, gone)), gone).toBe(false);
    expect(readFileSync(join(fake, 'etc/passwd'), 'utf8')).not.toMatch(/^erp-edge:/m);
    expect(readFileSync(join(fake, 'etc/group'), 'utf8')).not.toMatch(/^erp-edge:/m);
  });
});

describe.skipIf(!hasSystemd)('edge-agent install-service / uninstall-service', () => {
  it('runs install.sh beside the executable, and the installed executable runs uninstall.sh', ({ skip }) => {
    if (!built) skip();
    const viaScript = join(dir, 'root-script');
    const viaCli = join(dir, 'root-cli');
    const from = fromDir('from-cli');
    const answers = ['--site', 'wh-1', '--agent', 'box-1', '--broker', 'mqtt://127.0.0.1:1883', '--rw-path', '/srv/a', '--rw-path', '/srv/b'];
    sh('install.sh', ['--root', viaScript, '--from', from, ...answers]);
    const r = spawnSync(join(from, 'edge-agent'), ['install-service', '--root', viaCli, ...answers], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    // The same files, modes, owners and contents as install.sh run by hand.
    expect(tree(viaCli)).toEqual(tree(viaScript));
    expect(readFileSync(join(viaCli, 'etc/systemd/system/erp-edge-agent.service.d/rw-paths.conf'), 'utf8')).toMatch(/^ReadWritePaths=\/srv\/a \/srv\/b$/m);

    const u = spawnSync(join(viaCli, 'opt/erp-edge/bin/edge-agent'), ['uninstall-service', '--root', viaCli], { encoding: 'utf8' });
    expect(u.status, u.stderr).toBe(0);
    expect(existsSync(join(viaCli, 'opt/erp-edge'))).toBe(false);
    expect(existsSync(join(viaCli, 'etc/erp-edge/agent.yaml'))).toBe(true);
  });
});

describe.skipIf(!hasSystemd)('upgrade under a running outbox', () => {
  it('loses no pending event when install.sh replaces the executable of a running agent and it restarts', async ({ skip }) => {
    if (!built) skip();
    const fake = join(dir, 'root-upgrade');
    const base = ['--root', fake, '--site', 'wh-1', '--agent', 'box-1', '--broker', 'mqtt://127.0.0.1:1883'];
    sh('install.sh', [...base, '--from', fromDir('up-1')]);
    const exe = join(fake, 'opt/erp-edge/bin/edge-agent');
    // The installed agent on a state folder in the fake root; its broker is not up yet: events stay pending.
    const [brokerPort, httpPort] = [await freePort(), await freePort()];
    const work = join(fake, 'var/lib/erp-edge');
    const cfg = join(dir, 'upgrade-agent.yaml');
    writeFileSync(cfg, agentYaml({ url: `mqtt://127.0.0.1:${brokerPort}`, inbox: join(work, 'inbox'), dataDir: work }));
    const env = { PATH: '/usr/bin:/bin', HOME: dir };
    const old = new PackagedProcess(exe, ['run', '--config', cfg], env, join(dir, 'upgrade-agent.log'));
    const running: PackagedProcess[] = [old];
    try {
      const rows = dropCsvFiles(join(work, 'inbox'), 2, 300);
      // `status` asks the running agent over its control socket: every row is in the outbox, none sent.
      const pending = () => {
        const r = spawnSync(exe, ['status', '--json', '--config', cfg], { encoding: 'utf8', env });
        const snap = JSON.parse(r.stdout) as { running: boolean; pid: number; streams: { stream: string; pending: number }[] };
        return { ...snap, pending: snap.streams.find((x) => x.stream === 'orders')?.pending ?? 0 };
      };
      await waitFor('every row pending in the outbox', () => pending().pending === rows, 30_000, 200);
      const oldPid = pending().pid;

      // Upgrade while it runs: the file is replaced under it, then the service restarts (SIGTERM, start).
      const from = fromDir('up-2');
      appendFileSync(join(from, 'edge-agent'), Buffer.from([0]));
      sh('install.sh', [...base, '--from', from]);
      expect(await old.stop()).toBe(0);
      const upgraded = new PackagedProcess(exe, ['run', '--config', cfg], env, join(dir, 'upgrade-agent.log'));
      running.push(upgraded);
      // The new executable runs on the same outbox with the events still pending.
      const after = await waitFor('the upgraded agent to answer status', () => {
        const p = pending();
        return p.running && p.pid !== oldPid ? p : undefined;
      }, 30_000, 200);
      expect(after.pending).toBe(rows);
      const relayCfg = join(dir, 'upgrade-relay.yaml');
      writeFileSync(relayCfg, relayYaml({ dbPath: join(dir, 'upgrade-relay.db'), httpPort, embeddedPort: brokerPort }));
      const relay = new PackagedProcess(join(built!.dir, 'cloud-relay'), ['run', '--config', relayCfg], env, join(dir, 'upgrade-relay.log'));
      running.push(relay);
      const http = `http://127.0.0.1:${httpPort}`;
      const events = await waitFor('every row captured before the upgrade at the relay', async () => {
        const e = await fetchAllEvents(http, 'site-a', 'agent-1', 'orders');
        return e.length >= rows ? e : undefined;
      }, 60_000, 200);
      expect(checkExact(events, rows)).toBeUndefined();
    } finally {
      for (const p of running) await p.stop();
    }
  });
});
