/**
 * Node.js flags the agent service runs with (the service installer and the benchmark use these).
 * A 1 MiB young generation keeps resident memory about 20 MB lower under load for a few percent
 * of throughput: an edge box shares its RAM with the ERP. Measured by `npm run bench`.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=1'];
