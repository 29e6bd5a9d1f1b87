/**
 * Child process for the outbox crash test: opens the outbox at argv[2] and appends forever to
 * three streams, as a collector would: each batch (1..50 records) carries a per-stream counter in
 * its data, and the stream's checkpoint `{count}` is written in the same append. At start it
 * resumes every stream from its checkpoint. Writes `ready <json>` on stdout once it has resumed
 * and is about to append; the parent SIGKILLs it at a random moment.
 */
import { Outbox } from '../../agent/outbox/outbox.js';
import { testOutboxOptions } from './outbox.js';

const CRASH_STREAMS = ['alpha', 'beta', 'gamma'] as const;
const CRASH_COLLECTOR = 'crash-test';

const path = process.argv[2];
if (!path) {
  process.stderr.write('usage: outbox-append-loop.ts <outbox path>\n');
  process.exit(2);
}

const outbox = new Outbox(testOutboxOptions(path, { synchronous: 'FULL' }));
const counters = new Map<string, number>();
for (const stream of CRASH_STREAMS) {
  counters.set(stream, outbox.getCheckpoint<{ count: number }>(CRASH_COLLECTOR, stream)?.count ?? 0);
}

function appendBatch(): void {
  const stream = CRASH_STREAMS[Math.floor(Math.random() * CRASH_STREAMS.length)]!;
  const size = 1 + Math.floor(Math.random() * 50);
  let counter = counters.get(stream)!;
  const records = [];
  for (let i = 0; i < size; i++) {
    counter++;
    records.push({ id: `${stream}-${counter}`, source: `${CRASH_COLLECTOR}:${stream}`, data: { stream, counter, pad: 'x'.repeat(counter % 97) } });
  }
  outbox.append(stream, records, { collector: CRASH_COLLECTOR, key: stream, value: { count: counter } });
  counters.set(stream, counter);
}

// Pipes are synchronous on POSIX, but wait for the write callback anyway so the parent's clock
// only starts once this process is really appending.
process.stdout.write(`ready ${JSON.stringify({ epoch: outbox.epoch, counters: Object.fromEntries(counters) })}\n`, () => {
  // Chunks of synchronous appends, yielding between chunks so signals and I/O stay serviced.
  const loop = (): void => {
    for (let i = 0; i < 20; i++) appendBatch();
    setImmediate(loop);
  };
  loop();
});
