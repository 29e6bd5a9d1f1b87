// Part of `npm run build`, and the first step of `npm run package`: each program (agent, relay)
// bundled with esbuild into one CommonJS file, dist/bundle/<program>.cjs, which is what a single
// executable (Node SEA) can run: one CommonJS script that requires only built-in modules.
// - The lazy `import()`s of collectors and SQL drivers become bundled modules, loaded on first use.
// - better-sqlite3's native addon is not bundled: `bindings` (how better-sqlite3 finds it) is
//   replaced by a loader that opens better_sqlite3.node beside the bundle (or beside the
//   executable, which is the same place in a SEA: there __dirname is the executable's folder).
// - The relay's dashboard files are inlined (a SEA has no folder of its own to read them from).
// Run the agent's bundle with the flags the bench measured (agent/runtime-flags.ts):
//   node --max-semi-space-size=4 --max-old-space-size=96 dist/bundle/edge-agent.cjs run --config FILE
import { build, type Plugin } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createRequire } from 'node:module';

const root = resolve(import.meta.dirname, '..');
const require = createRequire(import.meta.url);

export const PROGRAMS = [
  { name: 'edge-agent', entry: 'agent/cli.ts' },
  { name: 'cloud-relay', entry: 'cloud-relay/cli.ts' },
];

/** The native addons the bundles load from disk: file name → where this machine's build of it is. */
export const NATIVE_ADDONS = ['better_sqlite3.node'];

/**
 * `require('bindings')('x.node')` → the addon file beside the bundle (or the executable). A single
 * executable also carries it as a SEA asset: when nothing is beside it, the asset is written once
 * to a folder of the service's own (systemd's $STATE_DIRECTORY, else ~/.cache) under its hash, and
 * loaded from there; so the executable alone is enough. Never /tmp: another user could plant a file.
 */
const BINDINGS_SHIM = `
const { join } = require('node:path');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const { homedir } = require('node:os');
function fromSeaAsset(name) {
  let sea;
  try { sea = require('node:sea'); } catch { return undefined; }
  if (!sea.isSea()) return undefined;
  let bytes;
  try { bytes = new Uint8Array(sea.getRawAsset(name)); } catch { return undefined; }
  const hash = createHash('sha256').update(bytes).digest('hex').slice(0, 16);
  const base = (process.env.STATE_DIRECTORY || '').split(':')[0] || process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = join(base, 'erp-edge-native', hash);
  const file = join(dir, name);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const tmp = file + '.' + process.pid + '.tmp';
    fs.writeFileSync(tmp, bytes, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
  return file;
}
module.exports = function bindings(name) {
  name = name.endsWith('.node') ? name : name + '.node';
  const beside = join(__dirname, name);
  const file = fs.existsSync(beside) ? beside : (fromSeaAsset(name) || beside);
  const mod = { exports: {} };
  try {
    process.dlopen(mod, file);
  } catch (err) {
    err.message = 'cannot load the native module ' + file + ' (it ships beside the executable): ' + err.message;
    throw err;
  }
  return mod.exports;
};`;

const nativeBindings: Plugin = {
  name: 'native-bindings',
  setup(b) {
    b.onResolve({ filter: /^bindings$/ }, () => ({ path: 'bindings', namespace: 'erp-edge-shim' }));
    b.onLoad({ filter: /^bindings$/, namespace: 'erp-edge-shim' }, () => ({ contents: BINDINGS_SHIM, loader: 'js' }));
  },
};

const dashboardInline: Plugin = {
  name: 'dashboard-inline',
  setup(b) {
    b.onLoad({ filter: /cloud-relay[\\/]api[\\/]dashboard-files\.ts$/ }, (args) => {
      const dir = join(dirname(args.path), 'dashboard');
      const files = Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
      return {
        contents: `const FILES = ${JSON.stringify(files)};
export function dashboardFile(name) {
  const b64 = FILES[name];
  if (b64 === undefined) throw new Error('the dashboard has no file ' + name);
  return Buffer.from(b64, 'base64');
}`,
        loader: 'js',
      };
    });
  },
};

/**
 * The Windows executable carries no native addon (none can be built here): its outbox uses
 * node:sqlite (agent/outbox/sqlite.ts reads __ERP_EDGE_SQLITE__), and better-sqlite3 is left out
 * of its bundle; a stub says so if anything still reached for it.
 */
const withoutBetterSqlite3: Plugin = {
  name: 'without-better-sqlite3',
  setup(b) {
    b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: 'better-sqlite3', namespace: 'erp-edge-shim' }));
    b.onLoad({ filter: /^better-sqlite3$/, namespace: 'erp-edge-shim' }, () => ({
      contents: "module.exports = function Database() { throw new Error('better-sqlite3 is not in this executable: its outbox uses node:sqlite (ERP_EDGE_SQLITE=node:sqlite)'); };",
      loader: 'js',
    }));
  },
};

/** What a bundle is for: this machine (both programs, native addons beside them) or the Windows executable. */
export type BundleTarget = 'host' | 'win-x64';

/** Bundles the programs of `target` into `outDir` (for the host, with this machine's native addons beside them). */
export async function bundle(outDir = join(root, 'dist', 'bundle'), target: BundleTarget = 'host'): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const win = target === 'win-x64';
  for (const p of PROGRAMS.filter((q) => !win || q.name === 'edge-agent')) {
    const result = await build({
      absWorkingDir: root,
      entryPoints: [p.entry],
      outfile: join(outDir, `${p.name}.cjs`),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      // The oldest Node a bundle runs on: 22 (the Windows executable's; Linux embeds 24).
      target: 'node22',
      sourcemap: 'linked',
      legalComments: 'none',
      logLevel: 'warning',
      plugins: win ? [withoutBetterSqlite3, nativeBindings, dashboardInline] : [nativeBindings, dashboardInline],
      // Optional peers the drivers probe for with require() inside try/catch; none is installed.
      external: ['pg-native', 'cardinal', 'supports-color', 'bufferutil', 'utf-8-validate', '@azure/keyvault-keys', 'pino-pretty'],
      // ESM-only packages (e.g. `open`, under mssql's @azure/identity) read import.meta.url, which
      // CommonJS lacks: point it at the bundle (or executable) file.
      banner: { js: "var __bundle_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
      define: {
        'import.meta.url': '__bundle_import_meta_url',
        'import.meta.dirname': '__dirname',
        'import.meta.filename': '__filename',
        ...(win ? { __ERP_EDGE_SQLITE__: JSON.stringify('node:sqlite') } : {}),
      },
    });
    if (result.errors.length > 0) throw new Error(`bundling ${p.name} failed`);
  }
  if (!win) for (const addon of NATIVE_ADDONS) copyFileSync(hostAddon(addon), join(outDir, addon));
  return outDir;
}

/** The addon as `npm install` built it for this machine's Node. */
function hostAddon(name: string): string {
  if (name === 'better_sqlite3.node') return join(dirname(require.resolve('better-sqlite3/package.json')), 'build', 'Release', name);
  throw new Error(`no known build of ${name}`);
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const out = await bundle();
  console.log(`bundled ${PROGRAMS.map((p) => p.name).join(', ')} -> ${out}`);
}
