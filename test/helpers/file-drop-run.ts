/**
 * Child process for the file-drop crash test: a file-drop collector on `<base>/drop` writing to
 * `<base>/outbox.db`, running until it is killed. Prints `started` once watching.
 * Usage: node --import tsx file-drop-run.ts <base> '<collector config JSON>'
 */
import { join } from 'node:path';
import { create } from '../../agent/collectors/file-drop/file-drop.js';
import { fileDropSchema } from '../../agent/collectors/file-drop/schema.js';
import { Outbox } from '../../agent/outbox/outbox.js';
import { testHost } from './host.js';
import { testOutboxOptions } from './outbox.js';

const [base, extra] = process.argv.slice(2);
const outbox = new Outbox(testOutboxOptions(join(base!, 'outbox.db'), { synchronous: 'FULL' }));
const cfg = fileDropSchema.parse({ type: 'file-drop', name: 'orders', path: 'drop', ...(JSON.parse(extra ?? '{}') as object) });
await create(cfg, testHost(outbox, cfg, base!).ctx).start();
process.stdout.write('started\n');
setInterval(() => undefined, 60_000); // until killed
