import type { Socket } from 'node:net';
import type { MqttClient } from 'mqtt';

/**
 * Turns off Nagle's algorithm on the client's TCP socket after every (re)connect. Our traffic is
 * small request/ack pairs: with Nagle on one side and delayed ACK on the other, each round trip
 * can stall ~40 ms.
 */
export function disableNagle(client: MqttClient): void {
  client.on('connect', () => {
    const stream = client.stream as Partial<Socket> | undefined;
    stream?.setNoDelay?.(true);
  });
}
