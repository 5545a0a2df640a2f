// The api process edge: builds the Fastify server around the app plugin, listens, registers the
// node, and closes everything in order on SIGTERM.
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { advertisedHost } from '../shared/advertise';
import type { ApiContext } from './context';
import { cadfleetApp } from './app';
import { type Config, nodeIdFor } from '../shared/config';
import { createKeyService } from '../shared/keys';
import type { Logger } from '../shared/logger';
import { createModelRepository } from '../shared/models';
import { createConversionQueue } from '../shared/queue';
import { readLbRouting, waitUntilUnrouted } from '../shared/registry';
import { hostPort } from '../shared/registry';
import { createServices } from '../shared/services';
import { type SessionService, createSessionService } from './stream-sessions';
import { createSessionStore } from '../shared/stream-sessions';
import { onShutdown } from '../shared/shutdown';
import { createUploadRepository } from './uploads';
import { createExportQueue, createExportStore } from '../shared/exports';
import { createBatchStore } from '../shared/batches';
import { VERSION } from '../shared/version';

export { advertisedHost } from '../shared/advertise';

export function buildServer(ctx: ApiContext, streaming?: SessionService) {
  const server = Fastify({
    loggerInstance: ctx.log,
    // Behind the nginx LB: client addresses come from X-Forwarded-For.
    trustProxy: true,
    bodyLimit: 1024 * 1024,
    requestTimeout: 0, // uploads can be long; the LB enforces its own timeouts
    connectionTimeout: 0,
    keepAliveTimeout: 75_000, // longer than nginx's upstream keepalive_timeout (60 s)
    // A request that reaches a closing api is answered by the app in its own error shape
    // (503 shutting_down, app.ts), not by Fastify's `{error, message}`.
    return503OnClosing: false,
    requestIdHeader: 'x-request-id',
  });
  void server.register(cadfleetApp, { ctx, streaming });
  return server;
}

export async function startApi(config: Config, log: Logger): Promise<{ server: ReturnType<typeof buildServer>; port: number; stop(): Promise<void> }> {
  const nodeId = nodeIdFor(config, 'api');
  const services = await createServices(config, log, 'api', nodeId);
  const queueConnection = services.connectRedis('request', `cadfleet-api-queue-${nodeId}`);
  const queue = createConversionQueue(queueConnection, config);
  let closing = false;
  const ctx: ApiContext = {
    closing: () => closing,
    config,
    log,
    version: VERSION,
    nodeId,
    startedAt: Date.now(),
    db: services.db,
    keys: createKeyService(services.db),
    models: createModelRepository(services.db),
    uploads: createUploadRepository(services.db),
    storage: services.storage,
    queue,
    registry: services.registry,
    health: services.health,
    metrics: services.metrics,
    exports: createExportStore(services.db),
    batches: createBatchStore(services.db),
    exportQueue: createExportQueue(queueConnection, config),
  };
  ctx.metrics.gauge('cadfleet_queue_jobs', 'Conversion jobs by state', ['state'], async (set) => {
    for (const [state, n] of Object.entries(await queue.counts())) set({ state }, n);
  });
  await services.health.check();
  services.health.start(config.dependencyCheckMs);

  const streaming = config.stream.tokenSecret
    ? createSessionService({
        registry: services.registry,
        // Behind the LB, only streamers nginx already routes to get sessions.
        routed: config.stream.urlMode === 'path' ? async () => (await readLbRouting(services.redis, config.redis.prefix))?.streamers : undefined,
        sessions: createSessionStore(services.redis, config.redis.prefix, config.stream.sessionTtlMs),
        tokenSecret: config.stream.tokenSecret,
        tokenTtlMs: config.stream.tokenTtlMs,
        nodeTtlMs: config.nodeTtlMs,
        urlMode: config.stream.urlMode,
        retryAfterSeconds: config.retryAfterSeconds,
      })
    : undefined;
  if (!streaming) log.warn('CADFLEET_STREAM_TOKEN_SECRET is not set: POST /api/v1/models/:id/sessions answers 503');
  const server = buildServer(ctx, streaming);
  const address = await server.listen({ host: config.http.host, port: config.http.port });
  const port = (server.server.address() as AddressInfo).port;
  const advertised = config.advertiseUrl ?? `http://${advertisedHost(config.http.host)}:${port}`;
  const registration = services.registry.register(
    { id: nodeId, role: 'api', version: VERSION, address: advertised },
    { intervalMs: config.heartbeatMs, ttlMs: config.nodeTtlMs, onError: (err) => log.debug({ err }, 'heartbeat failed') },
  );
  await registration.beat().catch((err: unknown) => log.warn({ err }, 'first heartbeat failed'));
  log.info({ address, port, node: nodeId, version: VERSION }, 'api listening');

  const stop = async (): Promise<void> => {
    // Draining first: the LB drops this node from its upstream. Until it has (a reload), nginx
    // may still send requests, on new connections or idle kept-alive ones: keep serving them,
    // or an upload sent on a socket we just closed would come back as a 502 (nginx never
    // retries a POST that reached a server). Then close: in-flight requests finish.
    await registration.drain().catch(() => undefined);
    const self = hostPort(advertised);
    const routed = await waitUntilUnrouted(services.redis, config.redis.prefix, (routing) => !!self && routing.api.has(self), config.lbDeregisterTimeoutMs, log);
    // The LB's new workers no longer route here, but its old ones (from before the reload) may,
    // on client connections kept alive, for up to its keepalive_time: serve them too, since a
    // request that reaches a closing api is answered 503 and nginx does not pass a 503 on.
    if (routed !== 'unpublished' && config.lbLingerMs > 0) {
      log.info({ lingerMs: config.lbLingerMs }, 'left the LB routing; serving requests of its older workers a while longer');
      await new Promise((r) => setTimeout(r, config.lbLingerMs));
    }
    // Event streams end (their clients reconnect elsewhere with Last-Event-ID), or close would wait for them.
    closing = true;
    await server.close();
    await registration.leave().catch(() => undefined);
    await queue.close().catch(() => undefined);
    await ctx.exportQueue.close().catch(() => undefined);
    queueConnection.disconnect();
    await services.close();
  };
  return { server, port, stop };
}

export async function runApi(config: Config, log: Logger): Promise<void> {
  const { stop } = await startApi(config, log);
  onShutdown(log, config.shutdownTimeoutMs, async () => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([stop(), new Promise<void>((resolve) => (timer = setTimeout(resolve, config.shutdownTimeoutMs)))]);
    clearTimeout(timer);
  });
}
