// The /status document: every live node, the queue and recent models, as JSON or HTML.
import type { DependencyStatus } from '../shared/health';
import type { ModelState } from '../shared/models';
import type { QueueCounts } from '../shared/queue';
import type { NodeRecord } from '../shared/registry';
import type { ModelView } from './routes/models';

export interface StatusNode {
  id: string;
  role: string;
  version: string;
  host: string;
  state: string;
  address?: string;
  uptimeSeconds: number;
  lastHeartbeat: string;
  lastHeartbeatAgeSeconds: number;
  extra: Record<string, string>;
  /** Streamers only: open sessions from the node's heartbeat. */
  streaming?: StreamerStatus;
}

export interface LiveSessionStatus {
  session: string;
  model: string;
  startedAt: number;
  framesSent: number;
  frames: number;
}

export interface StreamerStatus {
  sessions: number;
  maxSessions: number;
  load: number;
  /** The oldest open sessions (at most 50). */
  live: LiveSessionStatus[];
}

function streamerStatus(extra: Record<string, string>): StreamerStatus {
  let live: LiveSessionStatus[] = [];
  try {
    const parsed: unknown = JSON.parse(extra.live ?? '[]');
    if (Array.isArray(parsed)) live = parsed as LiveSessionStatus[];
  } catch {
    /* an older streamer, or a torn write: show counts only */
  }
  return { sessions: Number(extra.sessions ?? 0), maxSessions: Number(extra.maxSessions ?? 0), load: Number(extra.load ?? 0), live };
}

export interface StatusDocument {
  generatedAt: string;
  servedBy: { node: string; version: string };
  dependencies: DependencyStatus[];
  nodes: StatusNode[];
  queue: QueueCounts | null;
  models: { counts: Record<ModelState, number> | null; recent: ModelView[] };
}

export function statusNode(n: NodeRecord, now: number): StatusNode {
  return {
    id: n.id,
    role: n.role,
    version: n.version,
    host: n.host,
    state: n.state,
    ...(n.address ? { address: n.address } : {}),
    uptimeSeconds: Math.max(0, Math.round((n.heartbeatAt - n.startedAt) / 1000)),
    lastHeartbeat: new Date(n.heartbeatAt).toISOString(),
    lastHeartbeatAgeSeconds: Math.max(0, Math.round((now - n.heartbeatAt) / 100) / 10),
    extra: Object.fromEntries(Object.entries(n.extra).filter(([k]) => k !== 'live')),
    ...(n.role === 'streamer' ? { streaming: streamerStatus(n.extra) } : {}),
  };
}

const escape = (s: unknown): string =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const duration = (s: number): string => {
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 360) / 10} h`;
  return `${Math.round(s / 8640) / 10} d`;
};

function table(head: string[], rows: string[][]): string {
  if (rows.length === 0) return '<p class="empty">none</p>';
  return `<table><thead><tr>${head.map((h) => `<th>${escape(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

export function renderStatusHtml(doc: StatusDocument): string {
  const deps = doc.dependencies.map((d) => [escape(d.name), d.ok ? '<span class="ok">up</span>' : '<span class="bad">down</span>', `${d.latencyMs} ms`, escape(d.error ?? '')]);
  const nodes = doc.nodes.map((n) => [
    escape(n.id),
    escape(n.role),
    escape(n.version),
    escape(n.host),
    n.state === 'active' ? '<span class="ok">active</span>' : `<span class="warn">${escape(n.state)}</span>`,
    escape(duration(n.uptimeSeconds)),
    `${escape(n.lastHeartbeatAgeSeconds)} s ago`,
  ]);
  const streamers = doc.nodes
    .filter((n) => n.streaming)
    .map((n) => {
      const st = n.streaming!;
      const live = st.live.length
        ? st.live
            .map(
              (l) =>
                `<code title="session ${escape(l.session)}, model ${escape(l.model)}">${escape(l.session.slice(0, 8))}</code> model <code>${escape(l.model.slice(0, 8))}</code> ${escape(l.framesSent)}/${escape(l.frames)} frames, ${escape(duration(Math.max(0, Math.round((Date.parse(doc.generatedAt) - l.startedAt) / 1000))))}`,
            )
            .join('<br>') + (st.sessions > st.live.length ? `<br>and ${escape(st.sessions - st.live.length)} more` : '')
        : '<span class="empty">none</span>';
      return [
        escape(n.id),
        n.state === 'active' ? '<span class="ok">active</span>' : `<span class="warn">${escape(n.state)}</span>`,
        escape(n.address ?? ''),
        `${escape(st.sessions)} / ${escape(st.maxSessions)}`,
        `${escape(Math.round(st.load * 100))}%`,
        live,
      ];
    });
  const queue = doc.queue ? Object.entries(doc.queue).map(([k, v]) => `<b>${escape(k)}</b> ${escape(v)}`).join(' · ') : 'unavailable';
  const counts = doc.models.counts ? Object.entries(doc.models.counts).map(([k, v]) => `<b>${escape(k)}</b> ${escape(v)}`).join(' · ') : 'unavailable';
  const models = doc.models.recent.map((m) => [
    `<code>${escape(m.id.slice(0, 8))}</code>`,
    escape(m.project),
    escape(m.name),
    m.state === 'ready' ? '<span class="ok">ready</span>' : m.state === 'failed' ? `<span class="bad" title="${escape(m.error ?? '')}">failed</span>` : escape(`${m.state} ${m.progress}%`),
    escape(m.workerHost ?? ''),
    escape(m.stats ? `${m.stats.triangles} triangles, ${m.stats.seconds} s` : (m.error ?? '')),
    escape(m.createdAt),
  ]);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>cadfleet status</title>
<style>
body{font:14px system-ui,sans-serif;margin:2rem;color:#222}h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
table{border-collapse:collapse}td,th{padding:.25rem .7rem;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}
.ok{color:#187a2f}.bad{color:#b3261e}.warn{color:#9a6700}.empty,.meta{color:#777}
</style></head><body>
<h1>cadfleet status</h1>
<p class="meta">generated ${escape(doc.generatedAt)} by ${escape(doc.servedBy.node)} (version ${escape(doc.servedBy.version)}) · refreshes every 5 s · <a href="?format=json">JSON</a></p>
<h2>Dependencies</h2>${table(['dependency', 'state', 'latency', 'error'], deps)}
<h2>Nodes (${doc.nodes.length})</h2>${table(['node', 'role', 'version', 'host', 'state', 'uptime', 'last heartbeat'], nodes)}
<h2>Streamers (${streamers.length})</h2>${table(['node', 'state', 'address', 'sessions', 'load', 'live sessions'], streamers)}
<h2>Queue</h2><p>${queue}</p>
<h2>Models</h2><p>${counts}</p>${table(['id', 'project', 'name', 'state', 'worker', 'result', 'created'], models)}
</body></html>
`;
}
