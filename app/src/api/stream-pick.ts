// Which streamer gets a session: the least-loaded live one that is active (not draining) and
// below its session limit. Pure, so the choice is tested without a fleet.
import { hostPort } from '../shared/registry';
import type { NodeRecord } from '../shared/registry';

/** The registry fields a streamer adds to its heartbeat (`extra`). */
export interface StreamerLoad {
  sessions: number;
  maxSessions: number;
  /** sessions / maxSessions */
  load: number;
}

export function streamerLoad(node: NodeRecord): StreamerLoad {
  const sessions = Number(node.extra.sessions ?? 0);
  const maxSessions = Number(node.extra.maxSessions ?? 0);
  const load = Number(node.extra.load ?? (maxSessions > 0 ? sessions / maxSessions : 0));
  return {
    sessions: Number.isFinite(sessions) ? sessions : 0,
    maxSessions: Number.isFinite(maxSessions) ? maxSessions : 0,
    load: Number.isFinite(load) ? load : 1,
  };
}

/**
 * `routed`: the streamers the LB routes to now (id -> host:port, from cadfleet-lb-sync); a node
 * outside it, or at another address, is not picked: its stream URL would meet a 410 at the LB.
 * Undefined: no LB says what it routes (single machine, or the sync is down): no filter.
 * `avoid`: the node a resume comes from, taken only when no other node can take the session.
 */
export function pickStreamer(
  nodes: NodeRecord[],
  random: () => number = Math.random,
  routed?: ReadonlyMap<string, string>,
  avoid?: string,
): NodeRecord | undefined {
  const able = nodes
    .filter((n) => n.role === 'streamer' && n.state === 'active' && n.address)
    .filter((n) => !routed || routed.get(n.id) === hostPort(n.address))
    .map((n) => ({ node: n, ...streamerLoad(n) }))
    .filter((c) => c.maxSessions === 0 || c.sessions < c.maxSessions);
  // `avoid`: the node a resuming client comes from. A client resumes because its connection
  // there ended (the node drained, died, was full, or the client stalled); a node that died
  // stays in the registry until its TTL runs out, with the load it last reported, and would
  // be picked again and again meanwhile (found by the fleet's streamer-kill test: resumes
  // met 502s from the dead node for seconds). Another node is taken whenever one can.
  const elsewhere = avoid === undefined ? able : able.filter((c) => c.node.id !== avoid);
  const candidates = elsewhere.length > 0 ? elsewhere : able;
  if (candidates.length === 0) return undefined;
  const lowest = Math.min(...candidates.map((c) => c.load));
  // Ties (an idle fleet) are broken at random so that simultaneous requests spread out.
  const best = candidates.filter((c) => c.load - lowest < 1e-9);
  return best[Math.floor(random() * best.length) % best.length]!.node;
}

/** `/stream/<node>/<session>?token=...` (a path on the LB), or that path on the node's own address as ws(s)://. */
export function streamUrl(node: NodeRecord, sessionId: string, token: string, mode: 'path' | 'direct'): string {
  const pathname = `/stream/${encodeURIComponent(node.id)}/${encodeURIComponent(sessionId)}?token=${encodeURIComponent(token)}`;
  if (mode === 'path' || !node.address) return pathname;
  const base = new URL(node.address);
  return `${base.protocol === 'https:' ? 'wss:' : 'ws:'}//${base.host}${pathname}`;
}
