/**
 * `npm start`: the relay with its embedded broker and one agent, on the sample configs,
 * in one process. Drop a file into var/inbox/orders and read it back from the relay's API.
 */
import { createLogger } from '../common/logger.js';
import { describeError, onShutdown } from '../common/cli.js';
import { loadRelayConfig } from '../cloud-relay/config.js';
import { Relay } from '../cloud-relay/relay.js';
import { loadAgentConfig } from '../agent/config.js';
import { Agent } from '../agent/agent.js';

const relayConfigPath = process.env.ERP_EDGE_RELAY_CONFIG ?? 'config/relay.example.yaml';
const agentConfigPath = process.env.ERP_EDGE_AGENT_CONFIG ?? 'config/agent.example.yaml';

try {
  const relayCfg = loadRelayConfig(relayConfigPath);
  const agentCfg = loadAgentConfig(agentConfigPath);
  const logger = createLogger({ level: agentCfg.log_level });
  const relay = await Relay.start(relayCfg, logger.child({ name: 'cloud-relay' }));
  const agent = await Agent.start(agentCfg, logger.child({ name: 'edge-agent' }));
  const orders = agentCfg.collectors[0];
  const q = `site=${agentCfg.site}&agent=${agentCfg.agent}&stream=${orders?.stream ?? orders?.name}`;
  process.stderr.write(
    [
      '',
      `erp-edge demo running: relay API ${relay.httpUrl}, embedded broker ${relay.brokerUrl}`,
      `  drop a file:   cp config/samples/orders-sample.csv var/inbox/orders/`,
      `  dashboard:     ${relay.httpUrl}/  (demo login: demo / erp-edge-demo, see config/relay.example.yaml)`,
      // The shell expands the variable: the token itself is never printed.
      `  see it arrive: curl -H "Authorization: Bearer \${ERP_EDGE_API_TOKEN:-erp-edge-demo-token}" '${relay.httpUrl}/api/events?${q}'`,
      `  stop:          Ctrl+C`,
      '',
    ].join('\n'),
  );
  onShutdown(async () => {
    await agent.stop();
    await relay.stop();
  });
} catch (err) {
  process.stderr.write(`erp-edge demo failed to start: ${describeError(err)}\n`);
  process.exit(1);
}
