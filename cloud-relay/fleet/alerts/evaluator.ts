import type { Logger } from '../../../common/logger.js';
import type { RelayStore } from '../../store/store.js';
import type { AgentView } from '../agent-view.js';
import type { FleetRegistry } from '../fleet.js';
import { alertKey, notificationOf, type AlertRecord, type AlertStatus } from './alert.js';
import { holdsFor, type Holding } from './conditions.js';
import type { AlertRule, AlertsConfig } from './rules.js';
import { WebhookSender, type Delivery } from './webhook.js';

export interface AlertEvaluatorOptions {
  config: AlertsConfig;
  fleet: FleetRegistry;
  store: RelayStore;
  log: Logger;
  /** The relay's `id`, in every notification. */
  relayId: string;
  /** Defaults to the fleet's clock (one clock for states and alerts). */
  clock?: () => number;
}

/** GET /api/alerts. */
export interface AlertList {
  active: AlertRecord[];
  /** Newest first, at most `alerts.resolved_kept`. */
  resolved: AlertRecord[];
}

interface Pending {
  rule: string;
  site: string;
  agent: string;
  since: number;
}

/**
 * Evaluates the alert rules over the fleet registry: every `evaluate_every` for all agents (time
 * alone turns an agent stale or makes a wait run out) and on each presence or health message for
 * that agent. Each instance fires once, when its condition has held for the rule's `for`, and
 * resolves once, when it stops; both are logged (one line) and queued for the webhook. Active
 * alerts live in the store, so a restarted relay carries on where the previous one stopped.
 */
export class AlertEvaluator {
  private readonly rules: ReadonlyMap<string, AlertRule>;
  private readonly active = new Map<string, AlertRecord>();
  private resolved: AlertRecord[] = [];
  /** Instances whose condition holds but not yet for `for` (in memory: a restart waits again, unless the condition knows its start). */
  private readonly waiting = new Map<string, Pending>();
  private readonly webhook: WebhookSender | undefined;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  /** Evaluations of the whole fleet so far (tests wait on it). */
  evaluations = 0;
  /**
   * Store writes, one after another in the order decided (the store answers asynchronously): an
   * alert's insert has given it its id before its resolution or a delivery mark is written.
   */
  private writes: Promise<void> = Promise.resolve();

  constructor(private readonly o: AlertEvaluatorOptions) {
    this.rules = new Map(o.config.rules.map((r) => [r.name, r]));
    this.clock = o.clock ?? o.fleet.clock;
    const webhook = o.config.webhook;
    this.webhook = webhook ? new WebhookSender({ config: webhook, log: o.log, done: (d) => this.delivered(d) }) : undefined;
  }

  get webhookCounts(): WebhookSender['counts'] | undefined {
    return this.webhook?.counts;
  }

  /** Loads the store's alerts, queues what the webhook did not get yet, evaluates, then on the timer and on fleet changes. */
  async start(): Promise<void> {
    const all = await this.o.store.loadAlerts(this.o.config.resolved_kept);
    for (const a of all) {
      if (a.resolved_at === null) this.active.set(a.key, a);
      else this.resolved.unshift(a);
      if (!a.firing_sent) this.send(a, 'firing');
      if (a.resolved_at !== null && !a.resolved_sent) this.send(a, 'resolved');
    }
    this.o.fleet.onChange((site, agent) => this.guarded(() => this.evaluateAgent(site, agent)));
    this.guarded(() => this.evaluateAll());
    this.timer = setInterval(() => this.guarded(() => this.evaluateAll()), this.o.config.evaluate_every);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.webhook?.stop();
    await this.writes;
  }

  /** Resolves once the store writes decided so far are done (tests, shutdown). */
  settled(): Promise<void> {
    return this.writes;
  }

  /** Queues a store write after those decided before it; a failure is logged, never thrown into ingest. */
  private write(what: string, fn: () => Promise<void>): Promise<void> {
    this.writes = this.writes.then(fn).catch((err: Error) => this.o.log.error({ err: { message: err.message } }, `alert store write failed (${what})`));
    return this.writes;
  }

  list(): AlertList {
    return { active: [...this.active.values()].sort((a, b) => a.id - b.id), resolved: [...this.resolved] };
  }

  /** Every agent against every rule; alerts of rules no longer configured resolve. */
  evaluateAll(): void {
    const now = this.clock();
    for (const v of this.o.fleet.views()) this.evaluateView(v, now);
    for (const a of [...this.active.values()]) if (!this.rules.has(a.rule)) this.resolve(a, now);
    this.evaluations++;
  }

  evaluateAgent(site: string, agent: string): void {
    const v = this.o.fleet.view(site, agent);
    if (v) this.evaluateView(v, this.clock());
  }

  /** An evaluator fault must never break ingest (it runs in the MQTT message handler) nor stop the timer. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log.error({ err: { message: (err as Error).message } }, 'alert evaluation failed');
    }
  }

  private evaluateView(v: AgentView, now: number): void {
    const { site, agent } = v.record;
    for (const rule of this.rules.values()) {
      const holding = new Set<string>();
      for (const h of holdsFor(rule, v)) {
        const key = alertKey(rule.name, site, agent, h.labels);
        holding.add(key);
        this.holds(rule, site, agent, key, h, now);
      }
      this.release(rule.name, site, agent, holding, now);
    }
  }

  private holds(rule: AlertRule, site: string, agent: string, key: string, h: Holding, now: number): void {
    const a = this.active.get(key);
    if (a) {
      a.value = h.value;
      return;
    }
    const since = h.since ?? this.waiting.get(key)?.since ?? now;
    if (now - since < rule.for) {
      this.waiting.set(key, { rule: rule.name, site, agent, since });
      return;
    }
    this.waiting.delete(key);
    this.fire(rule, site, agent, key, h, since, now);
  }

  /** Instances of (rule, site, agent) whose condition no longer holds: resolve the fired, forget the waiting. */
  private release(rule: string, site: string, agent: string, holding: ReadonlySet<string>, now: number): void {
    const mine = (x: { rule: string; site: string; agent: string }) => x.rule === rule && x.site === site && x.agent === agent;
    for (const [key, w] of this.waiting) if (mine(w) && !holding.has(key)) this.waiting.delete(key);
    for (const a of [...this.active.values()]) if (mine(a) && !holding.has(a.key)) this.resolve(a, now);
  }

  private fire(rule: AlertRule, site: string, agent: string, key: string, h: Holding, since: number, now: number): void {
    const row: Omit<AlertRecord, 'id'> = {
      key,
      rule: rule.name,
      kind: rule.kind,
      site,
      agent,
      labels: h.labels,
      value: h.value,
      started_at: since,
      fired_at: now,
      resolved_at: null,
      firing_sent: this.webhook === undefined,
      resolved_sent: false,
    };
    // Active at once (it must not fire twice); stored before it is announced: a crash in between
    // loses a notification, never repeats one. Its id is the store's, known once the insert is done.
    const a: AlertRecord = { ...row, id: 0 };
    this.active.set(key, a);
    this.o.log.warn({ alert: rule.name, kind: rule.kind, site, agent, labels: h.labels, value: h.value, started_at: since }, 'alert firing');
    void this.write('insert', async () => {
      a.id = await this.o.store.insertAlert(row);
      this.send(a, 'firing');
    });
  }

  private resolve(a: AlertRecord, now: number): void {
    this.active.delete(a.key);
    a.resolved_at = now;
    a.resolved_sent = this.webhook === undefined;
    const value = a.value;
    const sent = a.resolved_sent;
    this.resolved.unshift(a);
    if (this.resolved.length > this.o.config.resolved_kept) this.resolved.length = this.o.config.resolved_kept;
    this.o.log.info({ alert: a.rule, kind: a.kind, site: a.site, agent: a.agent, labels: a.labels, value: a.value, started_at: a.started_at, duration_ms: now - a.started_at }, 'alert resolved');
    void this.write('resolve', async () => {
      await this.o.store.resolveAlert(a.id, now, value, sent, this.o.config.resolved_kept);
      this.send(a, 'resolved');
    });
  }

  private send(a: AlertRecord, status: AlertStatus): void {
    this.webhook?.enqueue({ alertId: a.id, body: notificationOf(a, status, this.o.relayId) });
  }

  private delivered(d: Delivery): void {
    const a = this.active.get(alertKey(d.body.rule, d.body.site, d.body.agent, d.body.labels));
    if (a?.id === d.alertId && d.body.status === 'firing') a.firing_sent = true;
    const r = this.resolved.find((x) => x.id === d.alertId);
    if (r) r[d.body.status === 'firing' ? 'firing_sent' : 'resolved_sent'] = true;
    void this.write('sent', () => this.o.store.markAlertSent(d.alertId, d.body.status));
  }
}
