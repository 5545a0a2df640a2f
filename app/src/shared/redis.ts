// Redis connections (queue, registry, health) with TLS for rediss://, ElastiCache IAM
// authentication, and the eviction check that keeps BullMQ from losing jobs.
import fs from 'node:fs';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { Redis, type RedisOptions } from 'ioredis';
import type { Config } from './config';
import type { Logger } from './logger';
import { type TokenCache, type TokenSource, elastiCacheTokenIssuer, startTokenCache } from './redis-iam';

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

/**
 * A client. With IAM authentication, `tokens` supplies the password: one source per process,
 * shared by all its clients (startRedisTokens).
 */
export function createRedis(config: Config['redis'], purpose: RedisPurpose, name: string, tokens?: TokenSource): Redis {
  const options = redisOptions(config, purpose, name);
  let client: Redis;
  if (config.auth.mode === 'iam') {
    if (tokens === undefined) throw new Error(`Redis client ${name}: IAM authentication needs a token source`);
    // Credentials in the URL would win over the options (ioredis fills options from the URL
    // first), and the URL has the user but an empty password.
    const url = new URL(config.url);
    url.username = '';
    url.password = '';
    client = withTokens(new Redis(url.toString(), { ...options, username: config.auth.user, password: tokens.current() }), tokens);
  } else {
    if (tokens !== undefined) throw new Error(`Redis client ${name}: a token source is for IAM authentication, but CADFLEET_REDIS_AUTH is password`);
    client = new Redis(config.url, options);
  }
  // Errors are reported by health checks and by the commands that fail; without a listener
  // ioredis prints each reconnect failure to stderr.
  client.on('error', () => undefined);
  return client;
}

/**
 * ioredis takes the password from `options.password` on every connect, reconnects included,
 * and duplicate() (which BullMQ calls for its blocking and event connections) copies the
 * options. So the password becomes a getter on the options (assignments are ignored: the
 * token source owns it), and duplicates get the same.
 */
function withTokens(client: Redis, tokens: TokenSource): Redis {
  Object.defineProperty(client.options, 'password', { get: () => tokens.current(), set: () => undefined, enumerable: true, configurable: true });
  const duplicate = client.duplicate.bind(client);
  client.duplicate = (override) => withTokens(duplicate(override), tokens);
  return client;
}

/**
 * The password source of a process's Redis clients: for IAM authentication a token cache fed
 * by the AWS SDK's default credential chain (on EC2, the instance role); undefined when the
 * URL carries the password. Stop it when the clients are closed.
 */
export async function startRedisTokens(config: Config['redis'], log: Logger): Promise<TokenCache | undefined> {
  const { auth } = config;
  if (auth.mode !== 'iam') return undefined;
  const issue = elastiCacheTokenIssuer({ cacheId: auth.cacheId, userId: auth.user, region: auth.region, serverless: auth.serverless }, defaultProvider());
  try {
    return await startTokenCache({ issue, onError: (err) => log.warn({ err }, `could not renew the ElastiCache IAM token: ${(err as Error).message}`) });
  } catch (err) {
    throw new Error(`could not make an ElastiCache IAM token for user ${auth.user} on ${auth.cacheId}: ${(err as Error).message}`, { cause: err });
  }
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
