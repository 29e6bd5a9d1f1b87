import type { AlertRecord } from '../../store/store.js';

export type { AlertRecord };

export type AlertStatus = 'firing' | 'resolved';

/** The webhook's JSON body (README: Alerts): the alert's own fields, its status and the relay. */
export type AlertNotification = Pick<AlertRecord, 'rule' | 'kind' | 'site' | 'agent' | 'labels' | 'value' | 'started_at' | 'fired_at'> & {
  status: AlertStatus;
  resolved_at?: number;
  /** The relay's `id`, so a receiver fed by several relays can tell them apart. */
  relay: string;
};

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
