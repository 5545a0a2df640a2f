// Streaming sessions in Redis, so that any streamer can take a session over when the one that
// held it drains or dies. The api creates and reassigns them; streamers read them and mark
// progress. Which parts the client holds is not kept here: the client says so on resume.
//
//   <prefix>:stream:session:<id>   HASH  id, model, project, prefix (S3 prefix of the model's
//                                        files), node, createdAt, updatedAt, connections, resumes,
//                                        completedAt?; PEXPIRE = CADFLEET_STREAM_SESSION_TTL_MS,
//                                        renewed on every assignment and connection
import type { Redis } from './redis';

export const sessionKey = (prefix: string, id: string): string => `${prefix}:stream:session:${id}`;

export interface StreamSession {
  id: string;
  model: string;
  project: string;
  /** S3 prefix of the model's converted files (`models/<project>/<id>/`). */
  prefix: string;
  /** The node the api assigned the session to last. */
  node: string;
  createdAt: number;
  updatedAt: number;
  resumes: number;
  connections: number;
  completedAt?: number;
}

export interface SessionStore {
  create(session: Omit<StreamSession, 'createdAt' | 'updatedAt' | 'resumes' | 'connections' | 'completedAt'>): Promise<StreamSession>;
  get(id: string): Promise<StreamSession | undefined>;
  /** The api hands the session to `node` (a resume); false when the session has expired. */
  reassign(id: string, node: string): Promise<StreamSession | undefined>;
  /** A streamer accepted a connection for the session. */
  connected(id: string): Promise<void>;
  completed(id: string): Promise<void>;
}

function parse(hash: Record<string, string>): StreamSession | undefined {
  if (!hash.id || !hash.model || !hash.prefix || !hash.node) return undefined;
  return {
    id: hash.id,
    model: hash.model,
    project: hash.project ?? '',
    prefix: hash.prefix,
    node: hash.node,
    createdAt: Number(hash.createdAt ?? 0),
    updatedAt: Number(hash.updatedAt ?? 0),
    resumes: Number(hash.resumes ?? 0),
    connections: Number(hash.connections ?? 0),
    ...(hash.completedAt ? { completedAt: Number(hash.completedAt) } : {}),
  };
}

export function createSessionStore(redis: Redis, prefix: string, ttlMs: number): SessionStore {
  const key = (id: string) => sessionKey(prefix, id);
  return {
    async create(s) {
      const now = Date.now();
      const session: StreamSession = { ...s, createdAt: now, updatedAt: now, resumes: 0, connections: 0 };
      await redis
        .multi()
        .hset(key(s.id), { id: s.id, model: s.model, project: s.project, prefix: s.prefix, node: s.node, createdAt: String(now), updatedAt: String(now), resumes: '0', connections: '0' })
        .pexpire(key(s.id), ttlMs)
        .exec();
      return session;
    },
    async get(id) {
      return parse(await redis.hgetall(key(id)));
    },
    async reassign(id, node) {
      // Only an existing session is reassigned: HSET on an expired key would create half a record.
      const exists = await redis.exists(key(id));
      if (!exists) return undefined;
      const replies = await redis
        .multi()
        .hset(key(id), { node, updatedAt: String(Date.now()) })
        .hincrby(key(id), 'resumes', 1)
        .pexpire(key(id), ttlMs)
        .hgetall(key(id))
        .exec();
      const hash = replies?.[3]?.[1] as Record<string, string> | undefined;
      return hash ? parse(hash) : undefined;
    },
    async connected(id) {
      await redis.multi().hincrby(key(id), 'connections', 1).hset(key(id), { updatedAt: String(Date.now()) }).pexpire(key(id), ttlMs).exec();
    },
    async completed(id) {
      await redis.multi().hset(key(id), { completedAt: String(Date.now()), updatedAt: String(Date.now()) }).pexpire(key(id), ttlMs).exec();
    },
  };
}
