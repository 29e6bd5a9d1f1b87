import mqtt from 'mqtt';

export function withTimeout<T>(what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export interface PublishOptions {
  /** Most publishes awaiting their PUBACK at once (MQTT packet ids are 16-bit: never near 65 535). */
  window: number;
  timeoutMs: number;
  log?: (m: string) => void;
}

/**
 * Publishes payloadAt(1..n) at QoS 1 on one connection, keeping at most `window` unacknowledged;
 * resolves with the seconds from the first publish to the n-th PUBACK.
 */
export async function publishQos1(url: string, topic: string, n: number, payloadAt: (i: number) => string, o: PublishOptions): Promise<number> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-pub-${process.pid}`, clean: true, protocolVersion: 4, reconnectPeriod: 0 });
  let done = false;
  try {
    const started = performance.now();
    const work = new Promise<void>((resolve, reject) => {
      let next = 1;
      let acked = 0;
      let lastLog = Date.now();
      client.once('close', () => {
        if (!done) reject(new Error(`publisher connection closed after ${acked} of ${n} PUBACKs`));
      });
      const pump = (): void => {
        while (next <= n && next - 1 - acked < o.window) {
          client.publish(topic, payloadAt(next++), { qos: 1 }, (err) => {
            if (done) return;
            if (err) {
              done = true;
              reject(err);
              return;
            }
            acked++;
            if (acked === n) {
              done = true;
              resolve();
              return;
            }
            if (o.log && Date.now() - lastLog > 10_000) {
              lastLog = Date.now();
              o.log(`  published ${acked}/${n} (PUBACKed)`);
            }
            pump();
          });
        }
      };
      pump();
    });
    await withTimeout(`publishing ${n} QoS 1 messages to ${url}`, work, o.timeoutMs);
    return (performance.now() - started) / 1000;
  } finally {
    done = true;
    await client.endAsync(true).catch(() => undefined);
  }
}
