// erp-edge dashboard: one ES module, no build step. Data from the relay's JSON API and its live
// channel (GET /api/live, Server-Sent Events). DOM is built with textContent only (never innerHTML
// with data), so an agent or collector name cannot inject markup.

const $ = (id) => document.getElementById(id);
const SVG = 'http://www.w3.org/2000/svg';
const STATE_MARK = { online: '●', offline: '✕', stale: '◐' };

const state = {
  me: null,
  agents: new Map(), // "site/agent" -> /api/agents row
  sites: new Map(), // site -> /api/sites row
  filter: '',
  es: null,
  changed: new Set(), // rows to flash at the next render
  detailTimer: null,
  alertsTimer: null,
};

const keyOf = (site, agent) => `${site}/${agent}`;

/** el('td', { class: 'num' }, 'text', child, …): attributes and children, text as text nodes. */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// ---------------------------------------------------------------------------------------------
// Formatting

function duration(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  if (s < 1) return '< 1 s';
  if (s < 90) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 90) return `${m} min`;
  const h = Math.round(m / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

const ago = (at) => (at ? `${duration(Date.now() - at)} ago` : '—');
const num = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString());
const bytes = (n) => {
  if (n === null || n === undefined) return '—';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) (n /= 1024), i++;
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
};
const time = (at) => (at ? new Date(at).toLocaleString() : '—');

function stateBadge(s) {
  return el('span', { class: `state state-${s}` }, el('span', { 'aria-hidden': 'true' }, `${STATE_MARK[s] ?? '•'} `), s);
}

// ---------------------------------------------------------------------------------------------
// Views: login, fleet, agent

function show(view) {
  for (const id of ['login', 'fleet', 'agent']) $(id).hidden = id !== view;
}

function showLogin(message = '') {
  state.es?.close();
  state.es = null;
  state.me = null;
  setConn('signed out', 'down');
  $('who').textContent = '';
  $('logout').hidden = true;
  $('login-error').textContent = message;
  show('login');
  $('user').focus();
}

function setConn(text, cls) {
  const c = $('conn');
  c.textContent = text;
  c.className = `conn ${cls ?? ''}`;
}

function announce(text) {
  const a = $('announce');
  a.append(el('p', {}, text));
  while (a.childElementCount > 5) a.firstElementChild.remove();
}

function matches(a) {
  if (!state.filter) return true;
  const hay = `${a.site} ${a.agent} ${a.agent_version ?? ''} ${a.state}`.toLowerCase();
  return state.filter.split(/\s+/).every((w) => hay.includes(w));
}

function renderFleet() {
  const bySite = new Map();
  let shown = 0;
  for (const a of state.agents.values()) {
    if (!matches(a)) continue;
    shown++;
    if (!bySite.has(a.site)) bySite.set(a.site, []);
    bySite.get(a.site).push(a);
  }
  const total = state.agents.size;
  const counts = { online: 0, offline: 0, stale: 0 };
  for (const a of state.agents.values()) counts[a.state]++;
  $('fleet-summary').textContent = `${state.sites.size} sites, ${total} agents: ${counts.online} online, ${counts.offline} offline, ${counts.stale} stale`;
  $('filter-count').textContent = state.filter ? `${shown} of ${total} agents shown` : '';

  const sections = [...bySite.keys()].sort().map((site) => siteSection(site, bySite.get(site).sort((x, y) => (x.agent < y.agent ? -1 : 1))));
  if (sections.length === 0) sections.push(el('p', { class: 'muted' }, total ? 'No agent matches the filter.' : 'No agent has reported yet.'));
  $('sites').replaceChildren(...sections);
  state.changed.clear();
}

function siteSection(site, agents) {
  const s = state.sites.get(site);
  const id = `site-${site.replace(/[^A-Za-z0-9_-]/g, '_')}`;
  const facts = s
    ? `${s.agents.total} ${s.agents.total === 1 ? 'agent' : 'agents'} · ${s.agents.online} online · ${s.agents.offline} offline · ${s.agents.stale} stale · ${num(s.pending)} pending${s.oldest_pending_age_ms !== null ? `, oldest ${duration(s.oldest_pending_age_ms)}` : ''} · ${s.collectors_in_error} collectors in error`
    : '';
  const head = el('tr', {}, ...['Agent', 'State', 'Version', 'Pending', 'Oldest pending', 'Capture→cloud lag', 'Last seen', 'Collectors in error'].map((h, i) => el('th', { scope: 'col', class: i >= 3 && i !== 6 ? 'num' : undefined }, h)));
  const rows = agents.map((a) => agentRow(a));
  return el(
    'section',
    { class: 'site', 'aria-labelledby': id, 'data-site': site },
    el('h3', { id }, site, el('span', { class: 'muted' }, facts)),
    el('div', { class: 'table-wrap' }, el('table', {}, el('caption', { class: 'visually-hidden' }, `Agents at site ${site}`), el('thead', {}, head), el('tbody', {}, rows))),
  );
}

function agentRow(a) {
  const k = keyOf(a.site, a.agent);
  const inError = a.collectors_in_error;
  return el(
    'tr',
    { 'data-agent': k, class: state.changed.has(k) ? 'changed' : undefined },
    el('th', { scope: 'row' }, el('a', { href: `#/agents/${encodeURIComponent(a.site)}/${encodeURIComponent(a.agent)}` }, a.agent)),
    el('td', { 'data-col': 'state' }, stateBadge(a.state)),
    el('td', {}, a.agent_version ?? '—'),
    el('td', { class: 'num' }, a.backlog ? num(a.backlog.pending) : '—'),
    el('td', { class: 'num' }, a.backlog ? duration(a.backlog.oldest_pending_age_ms) : '—'),
    el('td', { class: 'num' }, duration(a.capture_lag_ms)),
    el('td', {}, el('time', { datetime: new Date(a.last_seen).toISOString() }, ago(a.last_seen))),
    el('td', { class: inError ? 'num warn' : 'num' }, inError === null ? '—' : inError ? `⚠ ${inError}` : '0'),
  );
}

// ---------------------------------------------------------------------------------------------
// Agent page: #/agents/{site}/{agent}

function currentAgent() {
  const m = /^#\/agents\/([^/]+)\/([^/]+)$/.exec(location.hash);
  return m ? { site: decodeURIComponent(m[1]), agent: decodeURIComponent(m[2]) } : null;
}

async function renderAgent() {
  const which = currentAgent();
  if (!which) return;
  const res = await fetch(`/api/agents/${encodeURIComponent(which.site)}/${encodeURIComponent(which.agent)}`);
  if (res.status === 401) return showLogin();
  const now = currentAgent();
  if (!now || keyOf(now.site, now.agent) !== keyOf(which.site, which.agent)) return; // navigated away meanwhile
  if (res.status === 404) {
    $('agent-h').textContent = `${which.site} / ${which.agent}`;
    $('agent-body').replaceChildren(el('p', {}, 'This agent is not known to the relay.'));
    return;
  }
  const d = await res.json();
  $('agent-h').replaceChildren(`${d.site} / ${d.agent} `, stateBadge(d.state));
  $('agent-body').replaceChildren(agentFacts(d), chartsPanel(d.history), collectorsPanel(d), streamsPanel(d), errorsPanel(d));
}

function agentFacts(d) {
  const p = d.presence ?? {};
  const h = d.health ?? {};
  const row = state.agents.get(keyOf(d.site, d.agent));
  const facts = [
    ['Version', p.agent_version ?? '—'],
    ['Boot id', d.boot ?? '—'],
    ['Started', time(p.started_at)],
    ['Last seen', ago(d.last_seen)],
    ['Last health', ago(d.health_at)],
    ['Capture→cloud lag', duration(row?.capture_lag_ms)],
    ['Uptime', h.uptime_s !== undefined ? duration(h.uptime_s * 1000) : '—'],
    ['Config hash', p.config_hash ?? '—'],
    ['Wire', p.wire ? p.wire.join(', ') : '—'],
    ['Forwarder', h.forwarder ? `${h.forwarder.connected ? 'connected' : 'disconnected'}, ${h.forwarder.capture_rate}/s captured, ${h.forwarder.forward_rate}/s forwarded` : '—'],
    ['Memory (RSS)', bytes(h.process?.rss_bytes)],
    ['Disk free', bytes(h.disk?.free_bytes)],
    ['Outbox', h.outbox ? `${num(h.outbox.events)} events, ${bytes(h.outbox.bytes)}${h.outbox.full ? ' — FULL' : ''}` : '—'],
    ['Stale wills ignored', num(d.stale_wills)],
  ];
  return el('dl', { class: 'facts' }, facts.map(([k, v]) => el('div', {}, el('dt', {}, k), el('dd', {}, v))));
}

function chartsPanel(history) {
  return el(
    'section',
    { class: 'panel', 'aria-labelledby': 'charts-h' },
    el('h3', { id: 'charts-h' }, 'History'),
    el(
      'div',
      { class: 'charts' },
      chart('chart-backlog', 'Backlog (pending events)', history, (s) => s.pending, num),
      chart('chart-age', 'Oldest pending event age', history, (s) => s.oldest_pending_age_ms ?? 0, duration),
    ),
  );
}

/** An inline SVG line chart of one history figure, with a text alternative (title, desc). */
function chart(id, title, history, value, fmt) {
  const W = 480, H = 160, L = 8, R = 8, T = 10, B = 22;
  const pts = history.map((s) => ({ at: s.at, v: value(s) }));
  const max = Math.max(1, ...pts.map((p) => p.v));
  const t0 = pts[0]?.at ?? 0;
  const t1 = pts.at(-1)?.at ?? 1;
  const x = (at) => L + (t1 === t0 ? (W - L - R) : ((at - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / max) * (H - T - B);
  const last = pts.at(-1);
  const desc = pts.length ? `${pts.length} samples from ${time(t0)} to ${time(t1)}; latest ${fmt(last.v)}, highest ${fmt(max)}.` : 'No health samples yet.';
  const s = svg('svg', { class: 'chart', id, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d` });
  s.append(svg('title', { id: `${id}-t` }, title), svg('desc', { id: `${id}-d` }, desc));
  s.append(svg('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  if (pts.length) {
    // One sample: a flat line across, so there is still something to read.
    const line = pts.length === 1 ? `M${L},${y(pts[0].v)}H${W - R}` : pts.map((p, i) => `${i ? 'L' : 'M'}${x(p.at).toFixed(1)},${y(p.v).toFixed(1)}`).join('');
    const area = `${line}L${pts.length === 1 ? W - R : x(t1).toFixed(1)},${H - B}L${L},${H - B}Z`;
    s.append(svg('path', { class: 'area', d: area }), svg('path', { class: 'line', d: line }));
    s.append(svg('text', { x: L, y: H - 6 }, new Date(t0).toLocaleTimeString()), svg('text', { x: W - R, y: H - 6, 'text-anchor': 'end' }, new Date(t1).toLocaleTimeString()));
    s.append(svg('text', { x: L + 2, y: T + 10 }, `max ${fmt(max)}`));
  }
  return el('figure', { class: 'chart' }, el('figcaption', {}, `${title} — ${last ? `now ${fmt(last.v)}` : 'no data'}`), s);
}

function table(caption, headers, rows) {
  return el(
    'div',
    { class: 'table-wrap' },
    el('table', {}, el('caption', { class: 'visually-hidden' }, caption), el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows)),
  );
}

function collectorsPanel(d) {
  const cs = d.health?.collectors ?? [];
  const rows = cs.map((c) =>
    el(
      'tr',
      {},
      el('th', { scope: 'row' }, c.name),
      el('td', {}, c.type ?? '—'),
      el('td', {}, c.stream ?? '—'),
      el('td', {}, el('span', { class: `state state-${c.state}` }, c.state)),
      el('td', { class: 'num' }, num(c.error_count)),
      el('td', {}, c.last_error ? c.last_error.message : '—'),
      el('td', {}, c.last_error ? ago(c.last_error.at) : '—'),
    ),
  );
  return el(
    'section',
    { class: 'panel', 'aria-labelledby': 'coll-h' },
    el('h3', { id: 'coll-h' }, 'Collectors'),
    cs.length ? table('Collectors', ['Collector', 'Type', 'Stream', 'State', 'Errors', 'Last error', 'Since'], rows) : el('p', { class: 'muted' }, ' No health received yet.'),
  );
}

function streamsPanel(d) {
  const ss = d.health?.streams ?? [];
  const at = d.health?.at;
  const rows = ss.map((s) =>
    el(
      'tr',
      {},
      el('th', { scope: 'row' }, s.stream),
      el('td', { class: 'num' }, num(s.pending)),
      el('td', { class: 'num' }, bytes(s.pending_bytes)),
      el('td', { class: 'num' }, s.oldest_pending_at === null ? '—' : duration(at - s.oldest_pending_at)),
      el('td', {}, ago(s.last_ack_at)),
    ),
  );
  return el('section', { class: 'panel', 'aria-labelledby': 'streams-h' }, el('h3', { id: 'streams-h' }, 'Streams'), ss.length ? table('Streams', ['Stream', 'Pending', 'Pending bytes', 'Oldest pending', 'Last ack'], rows) : el('p', { class: 'muted' }, ' None.'));
}

function errorsPanel(d) {
  const items = [];
  for (const c of d.health?.collectors ?? []) {
    if (c.last_error) items.push({ at: c.last_error.at, text: `${c.name}: ${c.last_error.message}${c.last_error.code ? ` (${c.last_error.code})` : ''}` });
  }
  for (const x of d.health?.exceptions ?? []) if (x.count > 0) items.push({ at: x.oldest_at, text: `${x.kind}: ${x.count} (oldest)` });
  items.sort((a, b) => (b.at ?? 0) - (a.at ?? 0));
  return el(
    'section',
    { class: 'panel', 'aria-labelledby': 'errors-h' },
    el('h3', { id: 'errors-h' }, 'Recent errors'),
    items.length ? el('ul', { class: 'errors' }, items.map((i) => el('li', {}, el('time', { datetime: i.at ? new Date(i.at).toISOString() : '' }, ago(i.at)), ' — ', i.text))) : el('p', { class: 'muted' }, ' None.'),
  );
}

/** GET /api/alerts: the relay's active alerts (its rules, README "Alerts"), oldest first. */
async function refreshAlerts() {
  const res = await fetch('/api/alerts');
  if (!res.ok) return;
  const { active } = await res.json();
  const list = $('alert-list');
  list.replaceChildren(
    active.length
      ? el(
          'ul',
          { class: 'errors' },
          active.map((a) => {
            const labels = Object.entries(a.labels ?? {}).map(([k, v]) => ` ${k} ${v}`).join('');
            return el('li', { 'data-alert': a.rule }, el('strong', {}, a.rule), ` — ${a.site} / ${a.agent}${labels}, fired `, el('time', { datetime: new Date(a.fired_at).toISOString() }, ago(a.fired_at)));
          }),
        )
      : el('p', { class: 'muted' }, ' None.'),
  );
}

/** GET /api/sinks: per sink, dead-lettered events (count, oldest) and how far behind its cursors are (README "Sinks and dead-letter"). */
async function refreshSinks() {
  const res = await fetch('/api/sinks');
  if (!res.ok) return;
  const { sinks } = await res.json();
  $('sinks').hidden = sinks.length === 0;
  $('sink-list').replaceChildren(
    el(
      'ul',
      { class: 'errors' },
      sinks.map((s) => {
        const dead = s.dead_letters ? [`, ${s.dead_letters} dead-lettered (oldest `, el('time', { datetime: new Date(Date.now() - s.oldest_dead_letter_age_ms).toISOString() }, ago(Date.now() - s.oldest_dead_letter_age_ms)), ')'] : [', no dead letters'];
        return el('li', { 'data-sink': s.name }, el('strong', {}, s.name), ` (${s.type}) — ${s.behind} behind`, ...dead);
      }),
    ),
  );
}

/** After live changes: the alerts they may have fired or resolved (one fetch for a burst). */
function alertsSoon() {
  clearTimeout(state.alertsTimer);
  state.alertsTimer = setTimeout(() => void refreshAlerts(), 300);
}

// ---------------------------------------------------------------------------------------------
// Live channel

function connectLive() {
  state.es?.close();
  const es = new EventSource('/api/live');
  state.es = es;
  es.addEventListener('open', () => setConn('live', 'live'));
  es.addEventListener('snapshot', (e) => {
    const s = JSON.parse(e.data);
    state.agents = new Map(s.agents.map((a) => [keyOf(a.site, a.agent), a]));
    state.sites = new Map(s.sites.map((x) => [x.site, x]));
    setConn('live', 'live');
    renderFleet();
  });
  es.addEventListener('changes', (e) => {
    for (const c of JSON.parse(e.data)) applyChange(c);
    renderFleet();
    alertsSoon();
  });
  es.addEventListener('error', async () => {
    if (state.es !== es) return;
    setConn('reconnecting…', 'down');
    // EventSource retries by itself unless the answer was an error status (e.g. 401 after logout or expiry).
    if (es.readyState === EventSource.CLOSED) {
      const me = await fetch('/api/me');
      if (me.status === 401) showLogin('Your session ended; sign in again.');
      else setTimeout(() => state.es === es && connectLive(), 3000);
    }
  });
}

function applyChange(c) {
  const k = keyOf(c.agent.site, c.agent.agent);
  const before = state.agents.get(k);
  state.agents.set(k, c.agent);
  if (c.site) state.sites.set(c.site.site, c.site);
  if (!before || before.state !== c.agent.state) {
    state.changed.add(k);
    announce(`${c.agent.site} / ${c.agent.agent} is now ${c.agent.state}`);
  }
  const open = currentAgent();
  if (open && keyOf(open.site, open.agent) === k) {
    // Several health messages in a row: one refetch.
    clearTimeout(state.detailTimer);
    state.detailTimer = setTimeout(renderAgent, 300);
  }
}

// ---------------------------------------------------------------------------------------------
// Start, login, routing

function route() {
  if (!state.me) return;
  if (currentAgent()) {
    show('agent');
    void renderAgent();
  } else {
    show('fleet');
    renderFleet();
  }
}

function signedIn(me) {
  state.me = me;
  $('who').textContent = me.user ? `signed in as ${me.user}` : 'auth disabled';
  $('logout').hidden = me.kind !== 'user';
  connectLive();
  route();
  void refreshAlerts();
  void refreshSinks();
}

async function onLogin(e) {
  e.preventDefault();
  $('login-error').textContent = '';
  const body = JSON.stringify({ user: $('user').value, password: $('password').value });
  const res = await fetch('/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  $('password').value = '';
  if (!res.ok) {
    const err = await res.json().catch(() => ({}));
    $('login-error').textContent = err.error ?? `sign-in failed (${res.status})`;
    return;
  }
  const me = await fetch('/api/me');
  if (me.ok) signedIn(await me.json());
}

async function onLogout() {
  await fetch('/api/logout', { method: 'POST' });
  showLogin();
}

async function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', onLogout);
  $('filter').addEventListener('input', (e) => {
    state.filter = e.target.value.trim().toLowerCase();
    renderFleet();
  });
  window.addEventListener('hashchange', route);
  // "3 s ago" keeps counting between messages.
  setInterval(() => {
    if (!state.me || $('fleet').hidden) return;
    renderFleet();
    void refreshAlerts(); // a rule's `for:` can fire without a message
    void refreshSinks();
  }, 5_000);
  const me = await fetch('/api/me');
  if (me.status === 401) return showLogin();
  signedIn(await me.json());
}

void start();
