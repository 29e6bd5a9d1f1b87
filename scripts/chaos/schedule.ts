/**
 * The chaos runner's fault schedule: a pure function of (rounds, seed), so the same seed gives the
 * same faults in the same order with the same timings, on any machine.
 */
import { prng } from '../../bench/lib/prng.js';

/**
 * Named by what is done, not by what a network does: the network faults are made by a userspace
 * TCP proxy between the agent and the broker (bench/lib/tcp-proxy.ts), which cannot make packet
 * loss (TCP retransmits below it; `tc netem` is not available here) — loss is not covered.
 */
export const FAULT_KINDS = [
  'kill9-agent',
  'kill9-relay',
  'kill9-broker',
  'sigterm-agent',
  'sigterm-relay',
  'sigterm-broker',
  /** The open agent↔broker connection goes silent (no FIN, no RST) and the link stays down for `holdMs`; new connections pass after it. */
  'net-blackhole',
  /** The agent↔broker connection is closed with an RST on both sides. */
  'net-reset',
  /** 2 s added to every chunk in each direction for `holdMs`. */
  'net-delay-2s',
  /** The relay is SIGSTOPped for `holdMs`, then SIGCONTed (a relay that stalls: GC, a slow disk, an overloaded host). */
  'relay-pause',
] as const;

export type FaultKind = (typeof FAULT_KINDS)[number];

export interface Round {
  round: number;
  kind: FaultKind;
  /** Traffic flows this long before the fault. */
  beforeMs: number;
  /** How long the fault lasts (the process stays down, the link stays cut, the relay stays stopped). */
  holdMs: number;
}


export function makeSchedule(rounds: number, seed: number): Round[] {
  const rnd = prng(seed);
  const between = (lo: number, hi: number) => Math.round(lo + rnd() * (hi - lo));
  const out: Round[] = [];
  for (let i = 1; i <= rounds; i++) {
    const kind = FAULT_KINDS[Math.floor(rnd() * FAULT_KINDS.length)]!;
    out.push({ round: i, kind, beforeMs: between(300, 1_500), holdMs: between(200, 2_500) });
  }
  return out;
}
