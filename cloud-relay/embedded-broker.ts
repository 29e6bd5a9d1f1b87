import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import { portInUseError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';

export interface EmbeddedBroker {
  url: string;
  close(): Promise<void>;
}

/**
 * Aedes in-process, for a single machine that runs nothing else. Its default port is not 1883:
 * sites often have a Mosquitto there already.
 */
export async function startEmbeddedBroker(host: string, port: number, logger: Logger, maxMessageBytes = Infinity): Promise<EmbeddedBroker> {
  const aedes = await Aedes.createBroker({
    // limits.max_message_bytes: a larger publish is refused (Aedes then closes that client's
    // connection, as Mosquitto does past max_packet_size), never routed to the relay.
    authorizePublish: (client, packet, done) => {
      if (packet.payload.length <= maxMessageBytes) return done(null);
      logger.warn({ client: client?.id, topic: packet.topic.slice(0, 300), bytes: packet.payload.length, max: maxMessageBytes }, 'embedded broker refused a message over limits.max_message_bytes');
      done(new Error(`message of ${packet.payload.length} bytes over limits.max_message_bytes (${maxMessageBytes})`));
    },
  });
  const server: Server = createServer((socket) => {
    socket.setNoDelay(true); // small acks must not wait for Nagle (see common/mqtt-socket.ts)
    aedes.handle(socket);
  });
  await new Promise<void>((resolve, reject) => {
    const onStartError = (err: NodeJS.ErrnoException) => {
      aedes.close();
      reject(err.code === 'EADDRINUSE' ? portInUseError(host, port, 'embedded_broker.port', err) : err);
    };
    server.once('error', onStartError);
    server.listen(port, host, () => {
      server.off('error', onStartError);
      resolve();
    });
  });
  // After start-up (e.g. EMFILE on accept): log it; the broker keeps serving its other clients.
  server.on('error', (err) => logger.error({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'embedded broker server error'));
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  aedes.on('clientError', (client, err) => logger.debug({ client: client.id, err: { message: err.message } }, 'embedded broker client error'));
  logger.info({ host, port: actualPort }, 'embedded MQTT broker listening');
  return {
    url: `mqtt://${host}:${actualPort}`,
    close: () =>
      new Promise<void>((resolve) => {
        aedes.close(() => server.close(() => resolve()));
      }),
  };
}
