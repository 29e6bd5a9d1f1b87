/** A Server-Sent Events reader over fetch, for the relay's /api/live tests. */
export interface SseEvent {
  event: string;
  data: unknown;
}

export class SseReader {
  private buf = '';
  private readonly events: SseEvent[] = [];
  private waiters: Array<() => void> = [];
  private readonly abort = new AbortController();
  status = 0;
  /** Resolves when the server ends the stream (or it is closed here). */
  ended: Promise<void> = Promise.resolve();

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const r = new SseReader();
    const res = await fetch(url, { headers, signal: r.abort.signal });
    r.status = res.status;
    if (res.ok && res.body) r.ended = r.pump(res.body);
    return r;
  }

  private async pump(body: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of body) {
        this.buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = this.buf.indexOf('\n\n')) >= 0) {
          const block = this.buf.slice(0, i);
          this.buf = this.buf.slice(i + 2);
          const ev = parseBlock(block);
          if (ev) this.events.push(ev);
        }
        for (const w of this.waiters.splice(0)) w();
      }
    } catch {
      /* aborted */
    }
  }

  /** The first event (taken from the queue) that satisfies `pred`, waiting up to `timeoutMs`. */
  async next(pred: (e: SseEvent) => boolean = () => true, timeoutMs = 10_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.events.findIndex(pred);
      if (i >= 0) return this.events.splice(i, 1)[0]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching SSE event within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(t), resolve()));
      });
    }
  }

  close(): void {
    this.abort.abort();
  }
}

function parseBlock(block: string): SseEvent | undefined {
  let event = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) event = line.slice(7);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  return data.length ? { event, data: JSON.parse(data.join('\n')) } : undefined;
}
