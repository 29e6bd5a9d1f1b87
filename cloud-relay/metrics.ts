/** Counters the relay keeps; exposed on the HTTP API. */
export type RejectReason = 'invalid_json' | 'invalid_schema' | 'topic_mismatch' | 'bad_topic';

export class RelayMetrics {
  batches = 0;
  recordsStored = 0;
  duplicates = 0;
  conflicts = 0;
  gaps = 0;
  droppedAtAgents = 0;
  newEpochs = 0;
  storeErrors = 0;
  readonly rejected: Record<RejectReason, number> = { invalid_json: 0, invalid_schema: 0, topic_mismatch: 0, bad_topic: 0 };

  snapshot() {
    return {
      batches: this.batches,
      records_stored: this.recordsStored,
      duplicates: this.duplicates,
      conflicts: this.conflicts,
      gaps: this.gaps,
      dropped_at_agents: this.droppedAtAgents,
      new_epochs: this.newEpochs,
      store_errors: this.storeErrors,
      rejected: { ...this.rejected },
    };
  }
}
