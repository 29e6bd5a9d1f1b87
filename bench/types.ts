import { z } from 'zod';

/** One measured quantity over repeated runs. */
export const figure = z.object({
  scenario: z.string(),
  name: z.string(),
  unit: z.string(),
  values: z.array(z.number()).min(1),
  min: z.number(),
  median: z.number(),
  max: z.number(),
  /** Target from the issue, for the table (e.g. ">= 150000", "< 50"). */
  target: z.string().optional(),
});
export type Figure = z.infer<typeof figure>;

export const scenarioOutcome = z.object({
  name: z.string(),
  status: z.enum(['ok', 'failed']),
  /** Why it could not run or failed; never a made-up figure. */
  error: z.string().optional(),
  seconds: z.number(),
  params: z.record(z.string(), z.unknown()),
  notes: z.array(z.string()),
});

export const benchResults = z.object({
  version: z.literal(1),
  started_at: z.string(),
  quick: z.boolean(),
  machine: z.object({
    cpus: z.number().int().positive(),
    cpu_model: z.string(),
    memory_bytes: z.number().positive(),
    platform: z.string(),
    node: z.string(),
    mosquitto: z.string(),
    sqlite: z.string(),
  }),
  versions: z.record(z.string(), z.string()),
  /** Node.js flags the measured agent processes ran with. */
  agent_node_flags: z.array(z.string()),
  scenarios: z.array(scenarioOutcome),
  figures: z.array(figure),
});
export type BenchResults = z.infer<typeof benchResults>;

export interface ScenarioContext {
  quick: boolean;
  /** Scale factor for sizes (1 for the full run; tests pass a tiny one). */
  scale: number;
  /** Repeated runs per figure. */
  repeats: number;
  /** A fresh temp folder for this scenario, removed afterwards. */
  dir: string;
  log(msg: string): void;
  /** Records one run's value of a figure; call once per repeat. */
  record(name: string, unit: string, value: number, target?: string): void;
  note(text: string): void;
  /** Parameters worth printing with the results (sizes, batch settings). */
  param(key: string, value: unknown): void;
  /** Values already recorded in this run (scenario 2 needs scenario 1's figure for its ratio). */
  recorded(scenario: string, name: string): number[] | undefined;
  /** `--baseline REF`: another revision, built, for scenarios that measure before and after in one run. */
  baseline?: Baseline;
}

/** Compiled entry points of an agent and a relay: this tree's, or a baseline release's. */
export interface Dist {
  agent: string;
  relay: string;
  /** The paths are single executables (npm run package), run directly: their Node and flags are inside. */
  executable?: boolean;
  /**
   * The Node flags this revision's agent runs with as a service (its own agent/runtime-flags.ts);
   * absent: this tree's AGENT_NODE_FLAGS.
   */
  agentFlags?: readonly string[];
}

/** Another revision of this repository, built beside this tree (bench/lib/baseline.ts). */
export interface Baseline {
  /** As given (`--baseline REF`) and resolved. */
  ref: string;
  sha: string;
  /** With the Node flags its agent runs with (its own release's, or this tree's: BaselineFlags). */
  dist: Dist & { agentFlags: readonly string[] };
  remove(): void;
}

export interface Scenario {
  name: string;
  description: string;
  run(ctx: ScenarioContext): Promise<void>;
}

/** A scenario that cannot run throws this: the harness reports it and exits non-zero. */
export class ScenarioUnavailable extends Error {
  override name = 'ScenarioUnavailable';
}
