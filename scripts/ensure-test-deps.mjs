#!/usr/bin/env node
// Run by `npm test` before vitest: makes sure the real parts the tests spawn are installed.
// Mosquitto (the end-to-end and fault tests start their own on free ports), promtool (from
// Debian's prometheus package: the metrics tests check their output with it), Chromium
// (Debian's package: the dashboard's browser test; playwright-core downloads no browser), socat
// (the serial scanner tests: a real pseudo-terminal pair stands in for the serial cable), openssl
// (the TLS tests' certificates), systemd's tools (the Linux installer's tests; no running systemd needed)
// and Wine (the Windows installer's test).
// As root (or with password-less sudo) it installs the Debian package; otherwise it says how.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const CI = process.env.CI === 'true';

function found(bin) {
  const r = spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
  return r.status === 0 || ['/usr/sbin', '/usr/local/sbin', '/sbin'].some((d) => existsSync(`${d}/${bin}`));
}

function run(cmd) {
  console.log(`ensure-test-deps: ${cmd}`);
  return spawnSync('sh', ['-c', cmd], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }).status === 0;
}

function aptInstall(pkgs) {
  if (!found('apt-get')) return false;
  const sudo = process.getuid?.() === 0 ? '' : spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0 ? 'sudo -n ' : null;
  if (sudo === null) return false;
  return run(`${sudo}apt-get update -qq`) && run(`${sudo}apt-get install -y -qq --no-install-recommends ${pkgs.join(' ')}`);
}

const needed = [
  { bin: 'mosquitto', pkg: 'mosquitto', why: 'end-to-end and fault-injection tests spawn their own Mosquitto' },
  { bin: 'promtool', pkg: 'prometheus', why: 'the metrics tests check /metrics with `promtool check metrics` and the shipped alerting rules with `promtool check rules`' },
  { bin: 'chromium', pkg: 'chromium', why: 'the dashboard\'s browser test drives headless Chromium (/usr/bin/chromium) with playwright-core' },
  { bin: 'socat', pkg: 'socat', why: 'the scanner-serial tests make a real pseudo-terminal pair with it (one end for the collector, one for the test)' },
  { bin: 'openssl', pkg: 'openssl', why: 'the TLS tests make their CA, broker and client certificates with openssl' },
  { bin: 'systemd-analyze', pkg: 'systemd', why: 'the installer tests run systemd-analyze verify/security on the unit and systemd-sysusers into a fake root' },
  // Debian's wine64 puts its loader in /usr/lib/wine, not on PATH.
  { bin: '/usr/lib/wine/wine64', pkg: 'wine64', why: 'the Windows installer test runs edge-agent.exe as a service (nssm) under Wine' },
];
const missing = needed.filter((n) => !found(n.bin));
if (missing.length > 0 && !aptInstall(missing.map((m) => m.pkg))) {
  for (const m of missing) console.error(`ensure-test-deps: ${m.bin} is missing (${m.why}); install it: sudo apt-get install -y ${m.pkg}`);
  if (CI) process.exit(1);
  console.error('ensure-test-deps: the tests that need it will be skipped, each saying so.');
}
const still = needed.filter((n) => !found(n.bin));
if (CI && still.length > 0) {
  console.error(`ensure-test-deps: still missing after install: ${still.map((s) => s.bin).join(', ')}`);
  process.exit(1);
}

// Database servers the SQL collector's tests create their own databases on (issue #8). They are
// services, not binaries: this only checks that they answer, and says how to get them.
import { createConnection } from 'node:net';

function answers(port) {
  return new Promise((resolve) => {
    const sock = createConnection({ host: '127.0.0.1', port });
    sock.setTimeout(2000);
    sock.once('connect', () => (sock.destroy(), resolve(true)));
    sock.once('timeout', () => (sock.destroy(), resolve(false)));
    sock.once('error', () => resolve(false));
  });
}

const servers = [
  { name: 'PostgreSQL', port: 5432, how: 'sudo apt-get install -y postgresql (trust auth for postgres on 127.0.0.1)' },
  { name: 'MariaDB', port: 3306, how: 'sudo apt-get install -y mariadb-server (root without password on 127.0.0.1)' },
];
const down = [];
for (const s of servers) if (!(await answers(s.port))) down.push(s);
for (const s of down) console.error(`ensure-test-deps: ${s.name} does not answer on 127.0.0.1:${s.port} (the SQL collector tests need it): ${s.how}`);
if (CI && down.length > 0) process.exit(1);
