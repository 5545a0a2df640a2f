// Redis connections (queue, registry, health) with TLS for rediss:// and the eviction check
// that keeps BullMQ from losing jobs.
import fs from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config';

export type { Redis } from 'ioredis';

export type RedisPurpose =
  /** BullMQ workers and blocking commands: retry forever while Redis is away. */
  | 'worker'
  /** Request-path clients (the api's queue, registry, health): fail fast so the api can answer 503. */
  | 'request';

export function redisOptions(config: Config['redis'], purpose: RedisPurpose, name: string): RedisOptions {
  const tls = new URL(config.url).protocol === 'rediss:';
  return {
    connectionName: name,
    lazyConnect: false,
    connectTimeout: 5000,
    // BullMQ requires null for workers; request-path commands fail instead of queueing forever.
    maxRetriesPerRequest: purpose === 'worker' ? null : 1,
    enableOfflineQueue: purpose === 'worker',
    retryStrategy: (times) => Math.min(200 * times, 2000),
    ...(tls ? { tls: config.caFile ? { ca: fs.readFileSync(config.caFile, 'utf8') } : {} } : {}),
  };
}

export function createRedis(config: Config['redis'], purpose: RedisPurpose, name: string): Redis {
  const client = new Redis(config.url, redisOptions(config, purpose, name));
  // Errors are reported by health checks and by the commands that fail; without a listener
  // ioredis prints each reconnect failure to stderr.
  client.on('error', () => undefined);
  return client;
}

export class EvictionPolicyError extends Error {
  override name = 'EvictionPolicyError';
}

/**
 * BullMQ keeps jobs in ordinary keys: a Redis that evicts keys under memory pressure silently
 * deletes queued jobs. Refuse to run against one. INFO works on ElastiCache, where CONFIG is
 * not available.
 */
export async function assertNoEviction(client: Redis): Promise<void> {
  const info = await client.info('memory');
  const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1];
  if (policy === undefined) return; // a server that does not report it (not Redis itself)
  if (policy !== 'noeviction') {
    throw new EvictionPolicyError(
      `Redis maxmemory-policy is "${policy}", but cadfleet needs "noeviction": with eviction Redis deletes queued ` +
        'conversion jobs when it runs short of memory. Set maxmemory-policy noeviction (ElastiCache: in the parameter group).',
    );
  }
}
