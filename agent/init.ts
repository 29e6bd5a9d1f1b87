import { existsSync, linkSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { ErpEdgeError } from '../common/errors.js';
import { topicLevel } from '../common/wire-v1.js';
import { loadAgentConfig } from './config.js';

/** What `edge-agent init` asks for: the three things only a site knows, and where state lives. */
export interface StarterAnswers {
  site: string;
  agent: string;
  broker: string;
  /** Outbox folder; relative paths are resolved from the config file's folder. */
  dataDir: string;
  /** The starter file-drop collector's folder; default `<dataDir>/inbox/orders`. */
  inbox?: string;
}

/** The agent id `init` offers when none is given: the host's short name, if it is a valid topic level. */
export function defaultAgentId(): string | undefined {
  const short = hostname().split('.')[0] ?? '';
  return topicLevel.safeParse(short).success ? short : undefined;
}

/** Why an answer cannot go into the config, or undefined when it can (checked before anything is written). */
export function answerProblem(key: 'site' | 'agent' | 'broker', value: string): string | undefined {
  if (key === 'broker') return /^(mqtts?|wss?|tcp|tls):\/\/\S+$/.test(value) ? undefined : 'must be an mqtt://, mqtts://, ws:// or wss:// URL';
  const r = topicLevel.safeParse(value);
  return r.success ? undefined : r.error.issues[0]?.message;
}

/** YAML double-quoted scalar: JSON's string syntax is a subset of it. */
const q = (s: string) => JSON.stringify(s);

/** The starter config: the required settings filled in, the useful ones commented with their defaults. */
export function starterConfig(a: StarterAnswers): string {
  const inbox = a.inbox ?? `${a.dataDir.replace(/[\\/]+$/, '')}/inbox/orders`;
  return `# erp-edge agent config, written by \`edge-agent init\`. Check it with \`edge-agent validate --config FILE\`.
# Relative paths are resolved from this file's folder. \${VAR} and \${VAR:-default} take values from the
# environment: use them for secrets. config/agent.example.yaml shows every setting.
site: ${q(a.site)}
agent: ${q(a.agent)}
#log_level: info
data_dir: ${q(a.dataDir)}   # the outbox (outbox.db) lives here: keep it across upgrades

#outbox:
#  synchronous: FULL        # fsync every commit: a power cut loses nothing captured
#  max_bytes: 1GB
#  cap_policy: block        # block: pause collectors when full | drop_oldest: drop and count

transport:
  url: ${q(a.broker)}
  username: \${ERP_EDGE_MQTT_USER:-}
  password: \${ERP_EDGE_MQTT_PASSWORD:-}
#  keepalive: 60s           # a dead link (no FIN) is noticed after 1.5x this

#http:                      # GET /healthz and GET /metrics for the site's own monitoring
#  listen: 127.0.0.1:9465   # false or off: none

collectors:
  # A folder the ERP exports CSV files into. Under the systemd unit only the state folder
  # (/var/lib/erp-edge) and the unit's ReadWritePaths= are writable: put drop folders there.
  - type: file-drop
    name: orders
    path: ${q(inbox)}
    include: ["*.csv"]
    format: csv
#    key: [order_id]        # business key: a re-exported unchanged row gets the same id
#    poll: true             # for SMB/NFS shares, which send no change events
`;
}

/**
 * Writes the starter config to `path`, after checking that it loads as `validate` would load it;
 * an existing file is kept unless `force`.
 */
export function writeStarterConfig(path: string, a: StarterAnswers, opts: { force?: boolean } = {}): void {
  if (existsSync(path) && !opts.force) {
    throw new ErpEdgeError('ERP_CONFIG_EXISTS', `${path} already exists; pass --force to replace it`, { file: path });
  }
  mkdirSync(dirname(resolve(path)), { recursive: true });
  // Checked in a temporary file beside the target (relative paths resolve the same), then moved.
  const tmp = `${path}.init-${process.pid}.tmp`;
  writeFileSync(tmp, starterConfig(a), { mode: 0o640 });
  try {
    loadAgentConfig(tmp, { env: {} });
    if (opts.force) rmSync(path, { force: true });
    // link + unlink: fails if the file appeared meanwhile instead of silently replacing it.
    linkSync(tmp, path);
  } finally {
    rmSync(tmp, { force: true });
  }
}
