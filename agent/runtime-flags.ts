/**
 * Node.js flags the agent service runs with (the service installer, the single executables and the
 * benchmark use these). An edge box shares its RAM with the ERP: capping the old generation makes
 * V8 collect before its heap balloons under load (the live set is bounded by design: batches, one
 * cached chunk), and a capped young generation keeps it from growing to V8's 16 MB semi-spaces.
 *
 * 4 MB semi-spaces, not 2 (0.1 to 0.4): a batch of 1 000 records is alive through its capture
 * (the collector's objects, their encoded bodies, the chunk), and at 2 MB a scavenge fell inside
 * nearly every batch and copied all of it. Measured (durable-e2e's agent, `--trace-gc`, 500k
 * events): scavenges 515 → 237 and their time 594 → 303 ms; agent CPU per 100k events −10 to −25 %
 * across runs; `bench/agent-instructions.ts` 3.97 → 2.44 G instructions per 100k records; RSS under
 * load +2 to +8 MB (114 → 117–125 MB). 8 MB: RSS 126–134 MB for little more.
 * Before that, against Node's defaults (quick bench, 200k events): RSS under load 169 -> 108 MB,
 * replaying a backlog 143 -> 84 MB.
 */
export const AGENT_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4', '--max-old-space-size=96'];
