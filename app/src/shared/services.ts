// The connections the long-running roles share, built from the config and closed in reverse:
// PostgreSQL (api and worker; the streamer has none), Redis, S3, the node registry, the
// dependency checks and the metrics registry.
import type { Config } from './config';
import { type Db, createDb } from './db';
import { createHealth, type Health, okForAWhile } from './health';
import type { Logger } from './logger';
import { type Metrics, createMetrics } from './metrics';
import { type Redis, type RedisPurpose, assertNoEviction, createRedis, startRedisTokens } from './redis';
import type { TokenCache } from './redis-iam';
import { type Registry, createRegistry } from './registry';
import { type Storage, createStorage } from './storage';

/** What the connections are built from: a streamer's configuration has no database. */
export type ServicesConfig = Pick<Config, 'redis' | 's3' | 's3CheckMs' | 'dependencyTimeoutMs'> & { database?: Config['database'] };

export interface Services {
  db: Db;
  /** Request-path Redis client (registry, health); fails fast while Redis is away. */
  redis: Redis;
  /** Another Redis client with the same authentication (the BullMQ connections). */
  connectRedis(purpose: RedisPurpose, name: string): Redis;
  storage: Storage;
  registry: Registry;
  health: Health;
  metrics: Metrics;
  close(): Promise<void>;
}

async function waitForRedis(client: Redis, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', ready);
      reject(new Error(`Redis did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const ready = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', ready);
  });
}

/** A process's services without PostgreSQL (the streamer). */
export type StreamServices = Omit<Services, 'db'>;

export function createServices(config: Config, log: Logger, role: string, nodeId: string): Promise<Services>;
export function createServices(config: ServicesConfig & { database?: undefined }, log: Logger, role: string, nodeId: string): Promise<StreamServices>;
export async function createServices(config: ServicesConfig, log: Logger, role: string, nodeId: string): Promise<Services | StreamServices> {
  const db = config.database ? await createDb(config.database, log.child({ component: 'postgres' }), { applicationName: `cadfleet-${role}` }) : undefined;
  let tokens: TokenCache | undefined;
  try {
    tokens = await startRedisTokens(config.redis, log.child({ component: 'redis' }));
  } catch (err) {
    await db?.close();
    throw err;
  }
  const connectRedis = (purpose: RedisPurpose, name: string): Redis => createRedis(config.redis, purpose, name, tokens);
  const redis = connectRedis('request', `cadfleet-${role}-${nodeId}`);
  try {
    await waitForRedis(redis, 15_000);
    await assertNoEviction(redis);
  } catch (err) {
    redis.disconnect();
    tokens?.stop();
    await db?.close();
    throw err;
  }
  const storage = createStorage(config.s3);
  const health = createHealth(
    {
      ...(db ? { postgres: () => db.ping() } : {}),
      redis: () => redis.ping(),
      s3: okForAWhile(() => storage.ping(), config.s3CheckMs),
    },
    { timeoutMs: config.dependencyTimeoutMs },
  );
  health.onChange = (s) =>
    s.ok ? log.info({ dependency: s.name }, 'dependency is back') : log.warn({ dependency: s.name, error: s.error }, 'dependency is down');
  const metrics = createMetrics({ role, node: nodeId });
  metrics.gauge('cadfleet_dependency_up', 'Whether the last check of a dependency succeeded', ['dependency'], async (set) => {
    for (const s of health.current()) set({ dependency: s.name }, s.ok ? 1 : 0);
  });
  return {
    ...(db ? { db } : {}),
    redis,
    connectRedis,
    storage,
    registry: createRegistry(redis, config.redis.prefix),
    health,
    metrics,
    async close() {
      health.stop();
      storage.close();
      await redis.quit().catch(() => redis.disconnect());
      tokens?.stop();
      await db?.close();
    },
  };
}
