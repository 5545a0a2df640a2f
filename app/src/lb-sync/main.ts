// cadfleet-lb-sync: keeps the LB's nginx routing in step with the node registry in Redis, so
// hosts that an auto scaling group adds get traffic without a deploy, and hosts that drain or
// vanish stop getting new work. Runs on the LB host (unit cadfleet-lb-sync).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { ConfigError, type RedisConfig, parseEnv, redisConfigFrom, redisEnvSchema } from '../shared/config';
import { createLogger } from '../shared/logger';
import { createRedis, startRedisTokens } from '../shared/redis';
import { HOST_CONTRACT } from '../shared/host-contract';
import { type LbRouting, createRegistry, registryKeys } from '../shared/registry';
import { parseUpstreamServers, renderRouting } from './render';

const run = promisify(execFile);
const RELOAD_SETTLE_MS = 300;

// Redis is read as the service reads it (URL, CA, prefix, password or IAM authentication).
const envSchema = redisEnvSchema.extend({
  /** Where the two generated files live (included by nginx.conf). */
  CADFLEET_LB_ROUTING_DIR: z.string().default('/etc/nginx/cadfleet'),
  /** A node whose heartbeat is older than this is gone. */
  CADFLEET_NODE_TTL_MS: z.coerce.number().int().min(300).default(15_000),
  /** Full re-read interval, on top of the registry's join/drain/leave events. */
  CADFLEET_LB_SYNC_INTERVAL_MS: z.coerce.number().int().min(100).default(2000),
  CADFLEET_LOG_LEVEL: z.string().default('info'),
});

function loadEnv(): z.infer<typeof envSchema> & { redis: RedisConfig } {
  try {
    const env = parseEnv(envSchema, process.env);
    return { ...env, redis: redisConfigFrom(env) };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`cadfleet-lb-sync: ${err.message}\n`);
    process.exit(2);
  }
}

function writeIfChanged(file: string, text: string): boolean {
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return false;
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.tmp`);
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  return true;
}

async function main(): Promise<void> {
  const env = loadEnv();
  const log = createLogger({ level: env.CADFLEET_LOG_LEVEL, role: 'lb-sync' });
  const tokens = await startRedisTokens(env.redis, log);
  // Redis client names: the program's own (its unit's, in the host contract).
  const name = HOST_CONTRACT.roles.lb.release_units[0]!;
  const redis = createRedis(env.redis, 'worker', name, tokens);
  const events = createRedis(env.redis, 'worker', `${name}-events`, tokens);
  const registry = createRegistry(redis, env.CADFLEET_REDIS_PREFIX);
  const apiFile = path.join(env.CADFLEET_LB_ROUTING_DIR, 'api-upstream.conf');
  const mapFile = path.join(env.CADFLEET_LB_ROUTING_DIR, 'streamers.map');
  const routedKey = registryKeys(env.CADFLEET_REDIS_PREFIX).lbRouting;
  const seeded = fs.existsSync(apiFile) ? parseUpstreamServers(fs.readFileSync(apiFile, 'utf8')) : [];

  let running = false;
  let again = false;
  const sync = async (reason: string): Promise<void> => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      const routing = renderRouting(await registry.list(env.CADFLEET_NODE_TTL_MS), seeded);
      const backup = { api: fs.existsSync(apiFile) ? fs.readFileSync(apiFile, 'utf8') : '', map: fs.existsSync(mapFile) ? fs.readFileSync(mapFile, 'utf8') : '' };
      const changed = [writeIfChanged(apiFile, routing.apiUpstream), writeIfChanged(mapFile, routing.streamersMap)].some(Boolean);
      if (changed) {
        try {
          await run('nginx', ['-t', '-q']);
        } catch (err) {
          // Never leave nginx with a file it refuses: put the last good ones back.
          writeIfChanged(apiFile, backup.api);
          writeIfChanged(mapFile, backup.map);
          throw new Error(`nginx refused the new routing: ${(err as { stderr?: string }).stderr ?? (err as Error).message}`);
        }
        await run('nginx', ['-s', 'reload']);
        // The signal returns before the new workers accept: give them a moment before the api
        // starts handing out sessions on a streamer that just joined.
        await new Promise((r) => setTimeout(r, RELOAD_SETTLE_MS));
        log.info({ reason, api: routing.apiServers, streamers: routing.streamers.map(([id]) => id) }, 'routing updated and nginx reloaded');
      }
      // Said on every pass (not only on change), expiring: the api trusts it only while we live.
      const routed: LbRouting = { api: routing.apiServers, streamers: Object.fromEntries(routing.streamers), at: Date.now() };
      await redis.set(routedKey, JSON.stringify(routed), 'PX', Math.max(30_000, env.CADFLEET_LB_SYNC_INTERVAL_MS * 10));
    } catch (err) {
      log.error({ err }, `routing sync failed: ${(err as Error).message}`);
    } finally {
      running = false;
      if (again) {
        again = false;
        void sync('queued');
      }
    }
  };

  await events.subscribe(registryKeys(env.CADFLEET_REDIS_PREFIX).events);
  events.on('message', (_channel, message: string) => void sync(`event ${message.slice(0, 200)}`));
  const timer = setInterval(() => void sync('interval'), env.CADFLEET_LB_SYNC_INTERVAL_MS);
  await sync('start');
  log.info({ dir: env.CADFLEET_LB_ROUTING_DIR }, 'following the node registry');
  const stop = (): void => {
    clearInterval(timer);
    tokens?.stop();
    events.disconnect();
    redis.disconnect();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

await main();
