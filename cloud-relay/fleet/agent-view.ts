import type { Health, Presence } from '../../common/wire-v2.js';
import type { AgentRecord } from '../store/store.js';
import type { AgentState } from './state.js';

/** An agent's row with its state now (what the site summaries, alert rules and Prometheus collectors read). */
export interface AgentView {
  record: AgentRecord;
  state: AgentState;
  presence: Presence | null;
  health: Health | null;
}
