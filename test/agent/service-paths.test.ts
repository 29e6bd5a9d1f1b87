import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { makeTempDir } from '../helpers/tmp.js';
import { runCli } from '../helpers/cli.js';
import { unitWritablePaths } from '../../agent/service-paths.js';

const UNIT = resolve(import.meta.dirname, '../../installer/linux/erp-edge-agent.service');

let dir: string;
let cleanup: () => void;
beforeEach(() => ({ dir, cleanup } = makeTempDir()));
afterEach(() => cleanup());

function config(paths: string[]): string {
  const file = join(dir, 'agent.yaml');
  writeFileSync(
    file,
    `site: s\nagent: a\ndata_dir: /var/lib/erp-edge\ntransport:\n  url: mqtt://127.0.0.1:1883\ncollectors:\n${paths.map((p, i) => `  - type: file-drop\n    name: c${i}\n    path: ${p}\n`).join('')}`,
  );
  return file;
}

describe('validate, when the service unit is installed', () => {
  it('reads the writable paths of the shipped unit and its drop-ins (an empty ReadWritePaths= resets the list)', () => {
    const systemd = join(dir, 'systemd');
    mkdirSync(join(systemd, 'erp-edge-agent.service.d'), { recursive: true });
    copyFileSync(UNIT, join(systemd, 'erp-edge-agent.service'));
    expect(unitWritablePaths(systemd)).toEqual(['/var/lib/erp-edge']);
    writeFileSync(join(systemd, 'erp-edge-agent.service.d', 'a.conf'), '[Service]\nReadWritePaths=/srv/old\n');
    writeFileSync(join(systemd, 'erp-edge-agent.service.d', 'rw-paths.conf'), '[Service]\nReadWritePaths=\nReadWritePaths=-/srv/erp /mnt/share\n');
    expect(unitWritablePaths(systemd)).toEqual(['/var/lib/erp-edge', '/srv/erp', '/mnt/share']);
    expect(unitWritablePaths(join(dir, 'none'))).toBeUndefined();
  });

  it('warns about a drop folder the unit keeps read-only, and still exits 0', () => {
    const systemd = join(dir, 'systemd');
    mkdirSync(join(systemd, 'erp-edge-agent.service.d'), { recursive: true });
    copyFileSync(UNIT, join(systemd, 'erp-edge-agent.service'));
    writeFileSync(join(systemd, 'erp-edge-agent.service.d', 'rw-paths.conf'), '[Service]\nReadWritePaths=/srv/erp\n');
    const cfg = config(['/var/lib/erp-edge/inbox/orders', '/srv/erp/out', '/home/erp/exports']);
    const r = runCli('edge-agent', ['validate', '--config', cfg], { ERP_EDGE_SYSTEMD_DIR: systemd });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('OK ');
    expect(r.stderr.trim().split('\n')).toEqual([
      'warning: collector "c2" path /home/erp/exports is read-only for the erp-edge-agent.service service (writable: /var/lib/erp-edge /srv/erp); add it with: sudo ./install.sh --rw-path /home/erp/exports',
    ]);
  });

  it('says nothing when no unit is installed', () => {
    const r = runCli('edge-agent', ['validate', '--config', config(['/home/erp/exports'])], { ERP_EDGE_SYSTEMD_DIR: join(dir, 'none') });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
  });
});
