import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, isAbsolute } from 'node:path';
import type { LoadedAgentConfig } from './config.js';

/** The unit installer/linux/install.sh writes, and where (ERP_EDGE_SYSTEMD_DIR: a fake root's, for tests). */
export const UNIT_NAME = 'erp-edge-agent.service';

/**
 * What the installed systemd unit lets the agent write: its StateDirectory (/var/lib/<name>) and
 * every ReadWritePaths= of the unit and its drop-ins. Undefined when the unit is not installed here.
 */
export function unitWritablePaths(systemdDir: string): string[] | undefined {
  const unit = join(systemdDir, UNIT_NAME);
  if (!existsSync(unit)) return undefined;
  const dropins = join(systemdDir, `${UNIT_NAME}.d`);
  const files = [unit, ...(existsSync(dropins) ? readdirSync(dropins).filter((f) => f.endsWith('.conf')).sort().map((f) => join(dropins, f)) : [])];
  const state: string[] = [];
  let rw: string[] = [];
  for (const f of files) {
    for (const line of readFileSync(f, 'utf8').split('\n')) {
      const m = /^\s*(StateDirectory|ReadWritePaths)\s*=\s*(.*)$/.exec(line);
      if (!m) continue;
      const words = m[2]!.trim().split(/\s+/).filter(Boolean);
      if (m[1] === 'StateDirectory') state.push(...words.map((w) => join('/var/lib', w)));
      // An empty assignment resets the list (systemd's rule for list settings); "-" and "+" are prefixes.
      else rw = words.length === 0 ? [] : [...rw, ...words.map((w) => w.replace(/^[-+]+/, ''))];
    }
  }
  return [...state, ...rw];
}

/** Folders the config's collectors write to (drop folders, their archive and error folders), resolved. */
export function collectorWriteFolders(cfg: LoadedAgentConfig): Array<{ collector: string; key: string; path: string }> {
  const out: Array<{ collector: string; key: string; path: string }> = [];
  for (const c of cfg.collectors as unknown as Array<Record<string, unknown> & { name: string }>) {
    for (const key of ['path', 'archive_dir', 'error_dir']) {
      const v = c[key];
      if (typeof v === 'string') out.push({ collector: c.name, key, path: resolve(cfg.configDir, v) });
    }
  }
  out.push({ collector: '(agent)', key: 'data_dir', path: cfg.data_dir });
  return out;
}

const under = (path: string, dir: string) => {
  const r = relative(dir, path);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/**
 * `validate`'s warnings when the service unit is installed: a folder the agent must write that the
 * unit keeps read-only (ProtectSystem=strict) would fail at run time, not at validation.
 */
export function serviceWriteWarnings(cfg: LoadedAgentConfig, systemdDir = process.env.ERP_EDGE_SYSTEMD_DIR ?? '/etc/systemd/system'): string[] {
  const writable = unitWritablePaths(systemdDir);
  if (!writable) return [];
  return collectorWriteFolders(cfg)
    .filter((f) => !writable.some((w) => under(f.path, w)))
    .map(
      (f) =>
        `warning: ${f.collector === '(agent)' ? '' : `collector "${f.collector}" `}${f.key} ${f.path} is read-only for the ${UNIT_NAME} service (writable: ${writable.join(' ')}); add it with: sudo ./install.sh --rw-path ${f.path}`,
    );
}
