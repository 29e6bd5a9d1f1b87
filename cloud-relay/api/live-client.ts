import type { ServerResponse } from 'node:http';

/**
 * One Server-Sent Events connection. Writes go to the socket's buffer; when the client reads
 * slower than the fleet changes and that buffer passes `maxBufferedBytes`, the connection is
 * closed (the browser's EventSource reconnects and starts again from a fresh snapshot) instead
 * of buffering for it forever.
 */
export class LiveClient {
  private closed = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly maxBufferedBytes: number,
    private readonly onDrop: (buffered: number) => void,
  ) {}

  get isClosed(): boolean {
    return this.closed || this.res.destroyed;
  }

  send(event: string, data: unknown): void {
    this.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** A comment line: keeps proxies and the browser from timing the idle connection out. */
  heartbeat(): void {
    this.write(`: heartbeat ${Date.now()}\n\n`);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.end();
  }

  private write(chunk: string): void {
    if (this.isClosed) return;
    if (this.res.writableLength > this.maxBufferedBytes) {
      const buffered = this.res.writableLength;
      this.closed = true;
      this.res.destroy();
      this.onDrop(buffered);
      return;
    }
    this.res.write(chunk);
  }
}
