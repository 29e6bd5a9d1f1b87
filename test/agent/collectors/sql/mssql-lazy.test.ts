import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../../../helpers/cli.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const BREAK_HOOK = pathToFileURL(join(import.meta.dirname, '../../../fixtures/break-modules.mjs')).href;

/** `validate` reads a driver: mssql config without loading the mssql package (nor tedious). */
describe('driver: mssql loads lazily', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => {
    tmp = makeTempDir('mssql-lazy-');
  });
  afterEach(() => tmp.cleanup());

  const write = (tables: string) => {
    const p = join(tmp.dir, 'agent.yaml');
    writeFileSync(
      p,
      `site: s1
agent: a1
data_dir: ./data
transport:
  url: mqtt://127.0.0.1:1
collectors:
  - type: sql
    name: erp
    driver: mssql
    connection: { host: erp-db, database: erp, user: edge, password: x }
    tables:
${tables}`,
    );
    return p;
  };

  it('validate accepts the config while the mssql package cannot be imported', () => {
    const r = runCli('edge-agent', ['validate', '--config', write('      - { table: dbo.Orders, mode: change_tracking }\n')], { ERP_EDGE_TEST_BREAK_MODULES: 'mssql,tedious' }, ['--import', BREAK_HOOK]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^OK /);
  });

  it('validate names the key of a mode the driver cannot run', () => {
    const r = runCli('edge-agent', ['validate', '--config', write('      - { table: dbo.Orders, key: [id], mode: incremental, version_column: updated_at }\n')], { ERP_EDGE_TEST_BREAK_MODULES: 'mssql,tedious' }, ['--import', BREAK_HOOK]);
    expect(r.status).not.toBe(0);
    expect(`${r.stdout}${r.stderr}`).toMatch(/collectors\[0\]\.tables\[0\]\.mode: mode incremental is not available with driver: mssql/);
  });
});
