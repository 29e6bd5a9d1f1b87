import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Drops JSON Lines files into the agent's file-drop inbox, each written under a temp name and then
 * renamed (as ERP exports do): a file counts as committed once its rename returned. Names sort in
 * production order (the collector is set to `order: name`), rows carry (file, row).
 */
export class FileProducer {
  /** Files committed so far, and the rows of each. */
  readonly committed: number[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly inbox: string,
    private readonly rowsPerFile: number,
    private readonly everyMs: number,
  ) {
    mkdirSync(inbox, { recursive: true });
  }

  get rows(): number {
    return this.committed.reduce((a, b) => a + b, 0);
  }

  start(): void {
    this.timer = setInterval(() => this.drop(), this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private drop(): void {
    const f = this.committed.length + 1;
    const lines: string[] = [];
    for (let i = 1; i <= this.rowsPerFile; i++) lines.push(JSON.stringify({ f, i, sku: `SKU-${(f * 31 + i) % 997}`, qty: i % 50 }));
    const name = `f-${String(f).padStart(7, '0')}.jsonl`;
    writeFileSync(join(this.inbox, `${name}.tmp`), `${lines.join('\n')}\n`);
    renameSync(join(this.inbox, `${name}.tmp`), join(this.inbox, name));
    this.committed.push(this.rowsPerFile);
  }
}
