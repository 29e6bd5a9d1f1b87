/**
 * Child process for the SQL crash test: a sql collector writing to `<base>/outbox.db`, running
 * until it is killed. Prints `started` once capturing.
 * Usage: node --import tsx sql-run.ts <base> '<collector config JSON>'
 */
import { join } from 'node:path';
import { sqlSchema } from '../../agent/collectors/sql/schema.js';
import { create } from '../../agent/collectors/sql/sql.js';
import { Outbox } from '../../agent/outbox/outbox.js';
import { testHost } from './host.js';
import { testOutboxOptions } from './outbox.js';

const [base, json] = process.argv.slice(2);
const outbox = new Outbox(testOutboxOptions(join(base!, 'outbox.db'), { synchronous: 'FULL' }));
const cfg = sqlSchema.parse(JSON.parse(json!));
await create(cfg, testHost(outbox, cfg, base!).ctx).start();
process.stdout.write('started\n');
setInterval(() => undefined, 60_000); // until killed
