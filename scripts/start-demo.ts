/**
 * `npm start`: the relay with its embedded broker and one agent, on the sample configs,
 * in one process. Drop a file into var/inbox/orders and read it back from the relay's API.
 *
 * `npm start -- --reset` first deletes what the demo has kept (the agent's outbox, the relay's
 * store, the inboxes' archive/, error/ and in-progress files), so it starts as on a fresh clone.
 *
 * SIGINT (Ctrl+C) or SIGTERM (sent to `npm start`, which forwards it: the npm script `exec`s
 * node, so no shell stands between them) stops the agent, then the relay and its broker; the
 * outbox and the store are closed, and the process exits 0.
 * ERP_EDGE_RELAY_CONFIG / ERP_EDGE_AGENT_CONFIG point the demo at other configs (tests: free ports).
 */
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../common/logger.js';
import { secretValues } from '../common/secrets.js';
import { describeError, fail, onShutdown } from '../common/cli.js';
import { loadRelayConfig, type ResolvedRelayConfig } from '../cloud-relay/config.js';
import { Relay } from '../cloud-relay/relay.js';
import { loadAgentConfig, type LoadedAgentConfig } from '../agent/config.js';
import { Agent } from '../agent/agent.js';

const USAGE = 'usage: npm start [-- --reset]   (--reset: delete the demo\'s outbox, relay store and inbox archives first)';
let reset = false;
try {
  const { values } = parseArgs({ options: { reset: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) fail(USAGE, 0);
  reset = values.reset ?? false;
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 2);
}

const relayConfigPath = process.env.ERP_EDGE_RELAY_CONFIG ?? 'config/relay.example.yaml';
const agentConfigPath = process.env.ERP_EDGE_AGENT_CONFIG ?? 'config/agent.example.yaml';

let relay: Relay | undefined;
let agent: Agent | undefined;
// Registered before anything starts: a signal during start-up stops what has started, in order.
let starting: Promise<unknown> = Promise.resolve();
onShutdown(async () => {
  await starting.catch(() => undefined);
  await agent?.stop();
  await relay?.stop();
  process.stderr.write('erp-edge demo stopped\n');
});

try {
  const relayCfg = loadRelayConfig(relayConfigPath);
  const agentCfg = loadAgentConfig(agentConfigPath);
  if (reset) resetDemo(agentCfg, relayCfg);
  const logger = createLogger({ level: agentCfg.log_level, secrets: [...secretValues(relayCfg), ...secretValues(agentCfg)] });
  starting = (async () => {
    relay = await Relay.start(relayCfg, logger.child({ name: 'cloud-relay' }));
    agent = await Agent.start(agentCfg, logger.child({ name: 'edge-agent' }));
  })();
  await starting;
  const orders = agentCfg.collectors[0];
  const q = `site=${agentCfg.site}&agent=${agentCfg.agent}&stream=${orders?.stream ?? orders?.name}`;
  process.stderr.write(
    [
      '',
      `erp-edge demo running: relay API ${relay!.httpUrl}, embedded broker ${relay!.brokerUrl}`,
      `  drop a file:   cp config/samples/orders-sample.csv var/inbox/orders/`,
      `                 cp config/samples/stock-sample.jsonl var/inbox/stock/`,
      `  dashboard:     ${relay!.httpUrl}/  (demo login: demo / erp-edge-demo, see config/relay.example.yaml)`,
      // The shell expands the variable: the token itself is never printed.
      `  see it arrive: curl -H "Authorization: Bearer \${ERP_EDGE_API_TOKEN:-erp-edge-demo-token}" '${relay!.httpUrl}/api/events?${q}'`,
      `  stop:          Ctrl+C     start over: npm start -- --reset`,
      '',
    ].join('\n'),
  );
} catch (err) {
  process.stderr.write(`erp-edge demo failed to start: ${describeError(err)}\n`);
  await agent?.stop().catch(() => undefined);
  await relay?.stop().catch(() => undefined);
  process.exit(1);
}

/**
 * Deletes the demo's state: the agent's data folder, the relay's store files, and each file-drop
 * inbox's archive/, error/ and .processing/ folders. Only below the `var/` folder beside the
 * configs' folder (the samples' layout): pointed at a site's config, it refuses rather than delete.
 */
function resetDemo(agentCfg: LoadedAgentConfig, relayCfg: ResolvedRelayConfig): void {
  const targets = [agentCfg.data_dir];
  // A PostgreSQL store is not the demo's to delete.
  if (relayCfg.store.type !== 'postgres') {
    const store = relayCfg.store.path;
    targets.push(store, `${store}-wal`, `${store}-shm`, `${store}.counters.json`);
  }
  for (const c of agentCfg.collectors) {
    if (c.type !== 'file-drop') continue;
    const inbox = resolve(agentCfg.configDir, c.path);
    targets.push(
      c.archive_dir ? resolve(inbox, c.archive_dir) : join(inbox, 'archive'),
      c.error_dir ? resolve(inbox, c.error_dir) : join(inbox, 'error'),
      join(inbox, '.processing'),
    );
  }
  const allowed = [resolve(agentCfg.configDir, '..', 'var'), resolve(dirname(resolve(relayConfigPath)), '..', 'var')];
  const outside = targets.filter((t) => !allowed.some((a) => t.startsWith(a + sep)));
  if (outside.length) fail(`--reset deletes only the demo's state under ${allowed[0]}: refusing ${outside.join(', ')}`);
  const removed = targets.filter((t) => existsSync(t));
  for (const t of removed) rmSync(t, { recursive: true, force: true });
  process.stderr.write(`demo reset: ${removed.length ? removed.map((t) => relative(process.cwd(), t) || t).join(', ') : 'nothing to delete'}\n`);
}
