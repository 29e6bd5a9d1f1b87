/**
 * `edge-agent status` shows each scheduled job's last run (outcome, rows, duration, error, next
 * run): a running agent (in this process, real timers, a job firing every second) asked by the CLI
 * over its control socket, as an operator would.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../../../agent/agent.js';
import { loadAgentConfig } from '../../../../agent/config.js';
import { createLogger } from '../../../../common/logger.js';
import { runCliAsync } from '../../../helpers/cli.js';
import { freePort, waitFor } from '../../../helpers/net.js';
import { agentYaml } from '../../../helpers/pipeline.js';
import { makeTempDir } from '../../../helpers/tmp.js';

const logger = createLogger({ level: process.env.ERP_EDGE_TEST_LOG ?? 'silent' });
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

describe('edge-agent status with a schedule collector', () => {
  it('lists each job\'s figures: the last outcome, rows, duration, error and the next run', async () => {
    const tmp = makeTempDir('schedule-status-');
    cleanups.push(() => tmp.cleanup());
    mkdirSync(join(tmp.dir, 'data'));
    writeFileSync(join(tmp.dir, 'onhand.csv'), 'sku,qty\nA-1,5\nB-2,7\n');
    const collectors = `  - type: schedule
    name: snap
    jobs:
      - name: onhand
        cron: "* * * * * *"
        file: { path: ${join(tmp.dir, 'onhand.csv')} }
      - name: gone
        cron: "* * * * * *"
        file: { path: ${join(tmp.dir, 'nowhere.csv')} }
`;
    // No broker behind the url: the agent captures into its outbox regardless.
    const configPath = join(tmp.dir, 'agent.yaml');
    writeFileSync(configPath, agentYaml({ dataDir: join(tmp.dir, 'data'), inbox: tmp.dir, url: `mqtt://127.0.0.1:${await freePort()}`, collectors }));
    const agent = await Agent.start(loadAgentConfig(configPath), logger);
    cleanups.push(() => agent.stop());
    const counters = () => agent.supervisors.find((s) => s.name === 'snap')!.status().counters;
    await waitFor('both jobs ran', () => Number(counters()['onhand.ok']) >= 1 && Number(counters()['gone.failed']) >= 1, 10_000);

    const r = await runCliAsync('edge-agent', ['status', '--config', configPath]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^collector figures$/m);
    expect(r.stdout).toMatch(/^snap\tonhand\.last_outcome\tok$/m);
    expect(r.stdout).toMatch(/^snap\tonhand\.last_rows\t2$/m);
    expect(r.stdout).toMatch(/^snap\tonhand\.last_duration_ms\t\d+$/m);
    expect(r.stdout).toMatch(/^snap\tonhand\.last_run_id\tonhand@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    expect(r.stdout).toMatch(/^snap\tonhand\.next_run\t\d{4}-\d\d-\d\dT\S+Z$/m);
    expect(r.stdout).toMatch(/^snap\tgone\.last_outcome\terror$/m);
    expect(r.stdout).toMatch(/^snap\tgone\.last_error\tENOENT: .*nowhere\.csv/m);
    // The collector itself is running: a failed run is not a collector failure.
    expect(r.stdout).toMatch(/^snap\tschedule\tsnap\trunning\t/m);
  });
});
