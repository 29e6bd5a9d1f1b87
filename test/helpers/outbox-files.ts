import { join } from 'node:path';
import { afterEach, beforeEach, vi } from 'vitest';
import { Outbox, type OutboxOptions } from '../../agent/outbox/outbox.js';
import { testOutboxOptions } from './outbox.js';
import { makeTempDir } from './tmp.js';

/**
 * A temp folder per test with outboxes opened in it (closed, and the folder removed, after each
 * test). `defaults` apply to every `open()`.
 */
export function useOutboxFiles(prefix: string, defaults: Partial<OutboxOptions> = {}) {
  let tmp: ReturnType<typeof makeTempDir> | undefined;
  let opened: Outbox[] = [];
  const closeAll = () => {
    for (const o of opened) o.close();
    opened = [];
  };
  beforeEach(() => {
    tmp = makeTempDir(prefix);
  });
  afterEach(() => {
    vi.useRealTimers();
    closeAll();
    tmp?.cleanup();
  });
  const files = {
    get dir(): string {
      return tmp!.dir;
    },
    dbPath: (name = 'outbox.db') => join(tmp!.dir, name),
    open: (opts: Partial<OutboxOptions> = {}, name = 'outbox.db'): Outbox => files.track(new Outbox(testOutboxOptions(join(tmp!.dir, name), { ...defaults, ...opts }))),
    /** Closes this outbox with the others after the test. */
    track: (o: Outbox): Outbox => {
      opened.push(o);
      return o;
    },
    /** The test closed it itself. */
    untrack: (o: Outbox): void => {
      opened = opened.filter((x) => x !== o);
    },
    /** Closes everything and starts over in a fresh folder (for a loop inside one test). */
    reset: (): void => {
      closeAll();
      tmp?.cleanup();
      tmp = makeTempDir(prefix);
    },
  };
  return files;
}
