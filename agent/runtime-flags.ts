/**
 * Node.js flags the agent service runs with (the service installer and the benchmark use these).
 * An edge box shares its RAM with the ERP: capping the old generation makes V8 collect before
 * its heap balloons under load (the live set is bounded by design: batches, one cached chunk),
 * and a 2 MiB young generation keeps short-lived batch objects from being promoted.
 * Measured by `npm run bench` (quick, 200k events): RSS under load 169 -> 108 MB, replaying a
 * backlog 143 -> 84 MB, for about 5% of throughput.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=96'];
