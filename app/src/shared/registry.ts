// The node registry in Redis: every api, worker and streamer process announces itself
// and heartbeats here. /status reads it, and the LB's sync service reads it to write nginx
// upstreams, so the key layout below is a contract. Change it only together with its readers.
//
//   <prefix>:nodes               ZSET   member = node id, score = last heartbeat (ms since epoch)
//   <prefix>:node:<id>           HASH   the fields of NodeRecord (all strings), PEXPIRE = ttl
//   <prefix>:nodes:events        PUBSUB JSON NodeEvent on join, drain and leave
//   <prefix>:lb:routing          STRING JSON LbRouting {api: ["<host:port>"], streamers: {<id>:
//                                "<host:port>"}, at}: what nginx on the LB routes to now (written
//                                by cadfleet-lb-sync after each reload, expiring). The api hands
//                                out sessions only on routed streamers, so a new streamer gets none
//                                before the LB knows it; a draining api waits until it is out of
//                                `api` before it closes, so no request meets a closing socket.
//
// A node is live while its hash exists and its ZSET score is newer than now - ttl. Readers
// may prune ZSET members older than that. Roles add their own hash fields through `extra`;
// readers ignore fields they do not know:
//   worker:    activeJobs, concurrency
//   streamer:  sessions (open now), maxSessions (CADFLEET_STREAM_MAX_SESSIONS), load
//              (sessions / maxSessions: the api gives new sessions to the lowest), live (JSON
//              [{session, model, startedAt, framesSent, frames}] of the oldest 50, for /status)
// A streamer writes a heartbeat within 100 ms of its session count changing, besides the interval.
import os from 'node:os';
import type { Redis } from './redis';

export const registryKeys = (prefix: string) => ({
  nodes: `${prefix}:nodes`,
  node: (id: string) => `${prefix}:node:${id}`,
  events: `${prefix}:nodes:events`,
  lbRouting: `${prefix}:lb:routing`,
});

/** What cadfleet-lb-sync publishes after nginx took its routing. */
export interface LbRouting {
  /** api upstream servers, host:port */
  api: string[];
  /** streamer id -> host:port */
  streamers: Record<string, string>;
  at: number;
}

/** What the LB routes to, or undefined when no LB sync has said so recently (single machine, or the sync is down). */
export async function readLbRouting(redis: Pick<Redis, 'get'>, prefix: string): Promise<{ api: Set<string>; streamers: Map<string, string> } | undefined> {
  const raw = await redis.get(registryKeys(prefix).lbRouting);
  if (!raw) return undefined;
  try {
    const parsed = JSON.parse(raw) as LbRouting;
    return { api: new Set(parsed.api ?? []), streamers: new Map(Object.entries(parsed.streamers ?? {})) };
  } catch {
    return undefined;
  }
}

export type NodeState = 'active' | 'draining';

/**
 * Waits until the LB's published routing no longer includes this node (`routed` says whether
 * it does); returns at once when no LB publishes (single machine), or after `timeoutMs`. Says
 * which: 'unpublished' means there is no LB to wait for.
 */
export async function waitUntilUnrouted(
  redis: Pick<Redis, 'get'>,
  prefix: string,
  routed: (routing: { api: Set<string>; streamers: Map<string, string> }) => boolean,
  timeoutMs: number,
  log: { warn: (obj: object, msg: string) => void },
): Promise<'unpublished' | 'unrouted' | 'timeout'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const routing = await readLbRouting(redis, prefix).catch(() => undefined);
    if (!routing) return 'unpublished';
    if (!routed(routing)) return 'unrouted';
    if (Date.now() > deadline) {
      log.warn({ timeoutMs }, 'the LB still routes to this node after the deregistration timeout; closing anyway');
      return 'timeout';
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export interface NodeRecord {
  id: string;
  role: string;
  version: string;
  host: string;
  pid: number;
  /** How other hosts reach the node (for the LB), when it serves HTTP. */
  address?: string;
  state: NodeState;
  /** ms since epoch */
  startedAt: number;
  /** ms since epoch */
  heartbeatAt: number;
  /** Role-specific fields (streamer: sessions, load). */
  extra: Record<string, string>;
}

export interface NodeEvent {
  type: 'join' | 'drain' | 'leave';
  id: string;
  role: string;
  at: number;
}

const BASE_FIELDS = new Set(['id', 'role', 'version', 'host', 'pid', 'address', 'state', 'startedAt', 'heartbeatAt']);

export function parseNodeRecord(hash: Record<string, string>): NodeRecord | undefined {
  if (!hash.id || !hash.role) return undefined;
  const extra = Object.fromEntries(Object.entries(hash).filter(([k]) => !BASE_FIELDS.has(k)));
  return {
    id: hash.id,
    role: hash.role,
    version: hash.version ?? 'unknown',
    host: hash.host ?? 'unknown',
    pid: Number(hash.pid ?? 0),
    address: hash.address || undefined,
    state: hash.state === 'draining' ? 'draining' : 'active',
    startedAt: Number(hash.startedAt ?? 0),
    heartbeatAt: Number(hash.heartbeatAt ?? 0),
    extra,
  };
}

export interface NodeRegistration {
  readonly id: string;
  /** Writes one heartbeat now. */
  beat(): Promise<void>;
  /** Role-specific fields, written with the next heartbeat. */
  setExtra(fields: Record<string, string | number>): void;
  /** Marks the node draining (the LB stops sending new work) and keeps heartbeating. */
  drain(): Promise<void>;
  /** Stops heartbeats and removes the node. */
  leave(): Promise<void>;
}

export interface Registry {
  register(node: { id: string; role: string; version: string; address?: string }, options: { intervalMs: number; ttlMs: number; onError?: (err: unknown) => void }): NodeRegistration;
  list(ttlMs: number): Promise<NodeRecord[]>;
}

export function createRegistry(redis: Redis, prefix: string): Registry {
  const keys = registryKeys(prefix);
  const publish = (event: Omit<NodeEvent, 'at'>) => redis.publish(keys.events, JSON.stringify({ ...event, at: Date.now() }));
  return {
    register(node, options) {
      const startedAt = Date.now();
      let state: NodeState = 'active';
      let extra: Record<string, string> = {};
      let joined = false;
      let stopped = false;
      const beat = async (): Promise<void> => {
        if (stopped) return;
        const now = Date.now();
        const fields: Record<string, string> = {
          ...extra,
          id: node.id,
          role: node.role,
          version: node.version,
          host: os.hostname(),
          pid: String(process.pid),
          address: node.address ?? '',
          state,
          startedAt: String(startedAt),
          heartbeatAt: String(now),
        };
        await redis
          .multi()
          .hset(keys.node(node.id), fields)
          .pexpire(keys.node(node.id), options.ttlMs)
          .zadd(keys.nodes, now, node.id)
          .exec();
        if (!joined) {
          joined = true;
          await publish({ type: 'join', id: node.id, role: node.role });
        }
      };
      const timer = setInterval(() => void beat().catch(options.onError ?? (() => undefined)), options.intervalMs);
      timer.unref();
      return {
        id: node.id,
        beat,
        setExtra(fields) {
          extra = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)]));
        },
        async drain() {
          state = 'draining';
          await beat();
          await publish({ type: 'drain', id: node.id, role: node.role });
        },
        async leave() {
          stopped = true;
          clearInterval(timer);
          await redis.multi().del(keys.node(node.id)).zrem(keys.nodes, node.id).exec();
          await publish({ type: 'leave', id: node.id, role: node.role });
        },
      };
    },
    async list(ttlMs) {
      const cutoff = Date.now() - ttlMs;
      await redis.zremrangebyscore(keys.nodes, '-inf', `(${cutoff}`);
      const ids = await redis.zrangebyscore(keys.nodes, cutoff, '+inf');
      if (ids.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const id of ids) pipeline.hgetall(keys.node(id));
      const replies = (await pipeline.exec()) ?? [];
      return replies
        .map(([err, hash]) => (err ? undefined : parseNodeRecord(hash as Record<string, string>)))
        .filter((n): n is NodeRecord => n !== undefined)
        .sort((a, b) => a.role.localeCompare(b.role) || a.id.localeCompare(b.id));
    },
  };
}

/** host:port of a node's advertised URL, or undefined when it advertises none. */
export function hostPort(address: string | undefined): string | undefined {
  if (!address) return undefined;
  try {
    const url = new URL(address);
    return `${url.hostname}:${url.port || (url.protocol === 'https:' ? '443' : '80')}`;
  } catch {
    return undefined;
  }
}
