/** An alert instance: one per (rule, site, agent[, collector or stream]), from firing to resolution. */
export interface AlertRecord {
  /** The store's row id (order of firing). */
  id: number;
  /** rule, site, agent and labels: what makes the instance one. */
  key: string;
  rule: string;
  kind: string;
  site: string;
  agent: string;
  labels: Record<string, string>;
  /** The measured value while it held (the latest seen), e.g. the age in ms or the free bytes. */
  value: number | string;
  /** When the condition began (relay clock, epoch ms). */
  started_at: number;
  fired_at: number;
  resolved_at: number | null;
  /** Whether the webhook has its firing / its resolution (true when no webhook is configured). */
  firing_sent: boolean;
  resolved_sent: boolean;
}

export type AlertStatus = 'firing' | 'resolved';

/** The webhook's JSON body (README: Alerts). */
export interface AlertNotification {
  status: AlertStatus;
  rule: string;
  kind: string;
  site: string;
  agent: string;
  labels: Record<string, string>;
  value: number | string;
  started_at: number;
  fired_at: number;
  resolved_at?: number;
  /** The relay's `id`, so a receiver fed by several relays can tell them apart. */
  relay: string;
}

export function alertKey(rule: string, site: string, agent: string, labels: Record<string, string>): string {
  const l = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
  return `${rule}|${site}|${agent}|${l}`;
}

export function notificationOf(a: AlertRecord, status: AlertStatus, relay: string): AlertNotification {
  const n: AlertNotification = { status, rule: a.rule, kind: a.kind, site: a.site, agent: a.agent, labels: a.labels, value: a.value, started_at: a.started_at, fired_at: a.fired_at, relay };
  if (status === 'resolved' && a.resolved_at !== null) n.resolved_at = a.resolved_at;
  return n;
}
