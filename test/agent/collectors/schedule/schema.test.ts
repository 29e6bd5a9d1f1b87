/** The schedule config: what it accepts, its defaults, and how it names a mistake. */
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { scheduleSchema } from '../../../../agent/collectors/schedule/schema.js';

const sql = { driver: 'pg', database: 'erp', user: 'edge', password: 'x', query: 'SELECT sku, qty FROM onhand' };
const job = (extra: Record<string, unknown> = {}) => ({ name: 'onhand', cron: '0 2 * * *', sql, ...extra });
const parse = (jobs: unknown[]) => scheduleSchema.safeParse({ type: 'schedule', name: 'snap', jobs });
const messages = (r: ReturnType<typeof parse>) => (r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));

describe('schedule schema', () => {
  it('defaults: UTC, no catch-up, max_rows 100 000, the connection defaults of the sql collector', () => {
    const r = parse([job()]);
    expect(r.success).toBe(true);
    expect(r.data!.jobs[0]).toMatchObject({ time_zone: 'UTC', catch_up: false, max_rows: 100_000, sql: { host: '127.0.0.1', pool_size: 2, connect_timeout: 10_000, encrypt: true } });
  });

  it('accepts 6-field (seconds) expressions and nicknames; a file source instead of sql', () => {
    expect(parse([job({ cron: '*/30 * * * * *' }), job({ name: 'b', cron: '@daily', sql: undefined, file: { path: 'x.csv' } })]).success).toBe(true);
  });

  it('refuses a cron node-cron refuses, naming why', () => {
    expect(messages(parse([job({ cron: '61 2 * * *' })]))).toEqual([expect.stringMatching(/^jobs\.0\.cron: not a cron expression: .*minute/)]);
    expect(messages(parse([job({ cron: 'nightly' })]))[0]).toMatch(/^jobs\.0\.cron: not a cron expression/);
  });

  it('refuses an unknown zone, both or neither source, a duplicate job, a statement that is not one SELECT, TLS keys on pg', () => {
    expect(messages(parse([job({ time_zone: 'Mars/Olympus' })]))).toEqual(['jobs.0.time_zone: unknown IANA time zone "Mars/Olympus" (e.g. Europe/Berlin, UTC)']);
    expect(messages(parse([job({ file: { path: 'x.csv' } })]))).toEqual(['jobs.0: job onhand: give exactly one source, sql: or file:']);
    expect(messages(parse([job({ sql: undefined })]))).toEqual(['jobs.0: job onhand: give exactly one source, sql: or file:']);
    expect(messages(parse([job(), job()]))).toEqual(['jobs.1.name: job onhand is listed twice (a job name names its checkpoint)']);
    expect(messages(parse([job({ sql: { ...sql, query: 'DELETE FROM onhand' } })]))[0]).toMatch(/^jobs\.0\.sql\.query: the query must be a SELECT/);
    expect(messages(parse([job({ sql: { ...sql, query: 'SELECT 1; DROP TABLE onhand' } })]))[0]).toMatch(/must be one statement/);
    expect(messages(parse([job({ sql: { ...sql, trust_server_certificate: true } })]))).toEqual(['jobs.0.sql.trust_server_certificate: sql.trust_server_certificate is a SQL Server setting (driver: mssql)']);
  });

  it('importing the schema (and node-cron with it) and validating starts nothing: a process doing only that exits at once', () => {
    const script = `import { scheduleSchema } from './agent/collectors/schedule/schema.ts';
      scheduleSchema.parse({ type: 'schedule', name: 'snap', jobs: [{ name: 'a', cron: '0 2 * * *', file: { path: 'x.csv' } }] });
      setImmediate(() => console.log(JSON.stringify(process.getActiveResourcesInfo())));`;
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: process.cwd(), encoding: 'utf8', timeout: 30_000 });
    expect(JSON.parse(out.trim().split('\n').at(-1)!)).not.toContain('Timeout');
  });
});
