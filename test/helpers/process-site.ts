import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MosquittoProcess } from './mosquitto.js';
import { freePort } from './net.js';
import { relayYaml } from './pipeline.js';
import { makeTempDir } from './tmp.js';

/**
 * A site for tests that run the relay and the agent as processes: a temp folder (removed by the
 * caller's cleanups), a Mosquitto of its own, `relay.yaml` on a free HTTP port, and where the
 * agent's inbox and outbox go. The caller writes `agent.yaml` (its settings differ per test).
 */
export async function processSite(cleanups: (() => unknown)[], prefix?: string) {
  const { dir, cleanup } = makeTempDir(prefix);
  cleanups.push(cleanup);
  const mosquitto = await MosquittoProcess.start(dir);
  cleanups.push(() => mosquitto.stop());
  const httpPort = await freePort();
  writeFileSync(join(dir, 'relay.yaml'), relayYaml({ dbPath: join(dir, 'relay.db'), httpPort, brokerUrl: mosquitto.url }));
  const dataDir = join(dir, 'agent-data');
  return { dir, mosquitto, httpUrl: `http://127.0.0.1:${httpPort}`, inbox: join(dir, 'inbox'), dataDir, outboxPath: join(dataDir, 'outbox.db') };
}
