import type { IClientOptions, MqttClient } from 'mqtt';
import { LogThrottle } from '../../common/log-throttle.js';
import type { Logger } from '../../common/logger.js';
import { statusTopic } from '../../common/wire-v1.js';
import { healthTopic, presenceTopic, WIRE_V2, WIRE_VERSIONS, type Health, type Presence as PresenceMessage } from '../../common/wire-v2.js';

export interface PresenceOptions {
  site: string;
  agent: string;
  boot: string;
  agentVersion: string;
  epoch: string;
  configHash: string;
  collectors: { name: string; type: string; stream: string }[];
  startedAt: number;
  healthIntervalMs: number;
  /** The agent's health now (agent/state builds it; transport does not reach into collectors). */
  health: () => Health;
  logger: Logger;
}

/**
 * The agent's presence and health on the v2 topics: a retained birth when it connects, a retained
 * will with the same boot id (so the relay can tell a late will of a previous process from the
 * current one), and a health message every `health_interval` while connected.
 */
export class Presence {
  private timer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly errorLog = new LogThrottle(60_000);

  constructor(private readonly opts: PresenceOptions) {
    this.log = opts.logger.child({ component: 'presence' });
  }

  get topic(): string {
    return presenceTopic(this.opts.site, this.opts.agent);
  }

  /** The will, set when connecting: the broker publishes it if the link dies. */
  will(): NonNullable<IClientOptions['will']> {
    const offline: PresenceMessage = { v: WIRE_V2, online: false, boot: this.opts.boot, at: Date.now() };
    return { topic: this.topic, payload: Buffer.from(JSON.stringify(offline)), qos: 1, retain: true };
  }

  birth(): PresenceMessage {
    const o = this.opts;
    return {
      v: WIRE_V2,
      online: true,
      boot: o.boot,
      at: Date.now(),
      agent_version: o.agentVersion,
      wire: [...WIRE_VERSIONS],
      epoch: o.epoch,
      config_hash: o.configHash,
      collectors: o.collectors,
      started_at: o.startedAt,
    };
  }

  /** On every (re)connect: birth, clear the v1 status 0.1 agents left retained, health at once and then on the interval. */
  async onConnect(client: MqttClient): Promise<void> {
    await client.publishAsync(this.topic, JSON.stringify(this.birth()), { qos: 1, retain: true });
    // Release 0.1 wrote a retained v1 status here that nothing reads and that would go stale.
    await client.publishAsync(statusTopic(this.opts.site, this.opts.agent), '', { qos: 1, retain: true });
    this.publishHealth(client);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.publishHealth(client), this.opts.healthIntervalMs);
    this.timer.unref();
  }

  onDisconnect(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A clean stop: retained offline with this boot id (the broker would only send the will on a lost link). */
  offlineMessage(): string {
    const offline: PresenceMessage = { v: WIRE_V2, online: false, boot: this.opts.boot, at: Date.now() };
    return JSON.stringify(offline);
  }

  private publishHealth(client: MqttClient): void {
    if (!client.connected) return;
    let payload: string;
    try {
      payload = JSON.stringify(this.opts.health());
    } catch (err) {
      const t = this.errorLog.take('health');
      if (t) this.log.error({ err: { message: (err as Error).message }, suppressed: t.suppressed }, 'could not build the health message');
      return;
    }
    client.publish(healthTopic(this.opts.site, this.opts.agent), payload, { qos: 1 });
  }
}
