// The worker process edge: converter, BullMQ worker, heartbeats, optional metrics port, and an
// orderly stop on SIGTERM (finish the running job, or leave it to another worker at the deadline).
import Fastify from 'fastify';
import { type Config, nodeIdFor } from '../shared/config';
import type { Metrics } from '../shared/metrics';
import { startConversionWorker, workerIdentity } from './conversions';
import { createConverter } from '../converter/index';
import { converterEnvironment, ssmLicenseSource } from './converter-license';
import type { Logger } from '../shared/logger';
import { createModelRepository } from '../shared/models';
import { createConversionQueue } from '../shared/queue';
import { createServices } from '../shared/services';
import { onShutdown } from '../shared/shutdown';
import { VERSION } from '../shared/version';
import { startWebhookDelivery } from './webhooks';
import { createExportQueue, createExportStore } from '../shared/exports';
import { startExportWorker } from './exports';
import { createWebhookStore } from '../shared/webhooks/store';

/** /healthz and /metrics of a worker, for the private network only (like the api's /metrics). */
async function startMetricsServer(config: Config, nodeId: string, metrics: Metrics): Promise<{ close(): Promise<void> }> {
  const server = Fastify({ logger: false });
  server.get('/healthz', async () => ({ status: 'ok', node: nodeId, role: 'worker', version: VERSION }));
  server.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  await server.listen({ host: config.http.host, port: config.http.metricsPort });
  return { close: () => server.close() };
}

/**
 * Connection strings can carry passwords, and converter processes (possibly an operator's
 * third-party binary) inherit this process's environment. The config is parsed already, so
 * they are dropped here.
 */
const INHERITABLE_SECRETS = ['CADFLEET_DATABASE_URL', 'CADFLEET_REDIS_URL'];

export async function startWorker(config: Config, log: Logger): Promise<{ stop(): Promise<void> }> {
  for (const name of INHERITABLE_SECRETS) delete process.env[name];
  const nodeId = nodeIdFor(config, 'worker');
  const services = await createServices(config, log, 'worker', nodeId);
  const connection = services.connectRedis('worker', `cadfleet-worker-${nodeId}`);
  const queueConnection = services.connectRedis('worker', `cadfleet-worker-queue-${nodeId}`);
  const queue = createConversionQueue(queueConnection, config);
  const converterLog = log.child({ component: 'converter' });
  const licenseParameter = config.worker.licenseParameter;
  const converterEnv = await converterEnvironment(
    licenseParameter ? ssmLicenseSource({ parameter: licenseParameter, region: config.s3.region, endpoint: config.worker.ssmEndpoint }) : undefined,
  );
  if (licenseParameter) log.info({ parameter: licenseParameter }, 'converter licence read');
  const converter = createConverter({
    env: converterEnv,
    mode: config.worker.converterMode,
    poolSize: config.worker.concurrency,
    recycleAfterJobs: config.worker.recycleAfterJobs,
    commandTemplate: config.worker.converterCommand,
    limits: { timeoutMs: config.worker.timeoutMs, maxMemoryMb: config.worker.maxMemoryMb },
    onOutput: (line) => converterLog.info({ output: line.slice(0, 2000) }, 'converter output'),
  });
  await converter.warmUp();

  const models = createModelRepository(services.db);
  const exportStore = createExportStore(services.db);
  const exportQueueConnection = services.connectRedis('worker', `cadfleet-exports-queue-${nodeId}`);
  const exportQueue = createExportQueue(exportQueueConnection, config);
  const conversions = startConversionWorker({
    afterReady: async (id) => exportQueue.enqueue(id, (await exportStore.queued(id)).map((e) => e.format)),
    afterFailed: (id, error) => exportStore.failWaiting(id, error),
    config,
    log,
    models,
    storage: services.storage,
    converter,
    metrics: services.metrics,
    identity: workerIdentity(nodeId),
    connection,
    queue,
  });
  // Webhooks go out from the worker hosts: they are on the queue's side of the fleet, and an api
  // host never calls an address a client named.
  const webhookConnection = services.connectRedis('worker', `cadfleet-webhooks-${nodeId}`);
  const webhookQueueConnection = services.connectRedis('worker', `cadfleet-webhooks-queue-${nodeId}`);
  const webhooks = startWebhookDelivery({ config, log, store: createWebhookStore(services.db), connection: webhookConnection, queueConnection: webhookQueueConnection });
  // Derived files (targets), on the same hosts and limits as conversions.
  const exportConnection = services.connectRedis('worker', `cadfleet-exports-${nodeId}`);
  const exportWorker = startExportWorker({
    config,
    log: log.child({ component: 'exports' }),
    storage: services.storage,
    exports: exportStore,
    getModel: (id) => models.get(id, {}),
    host: workerIdentity(nodeId).host,
    connection: exportConnection,
  });
  services.health.start(config.dependencyCheckMs);

  const metricsServer = config.http.metricsPort === undefined ? undefined : await startMetricsServer(config, nodeId, services.metrics);

  const registration = services.registry.register(
    { id: nodeId, role: 'worker', version: VERSION },
    { intervalMs: config.heartbeatMs, ttlMs: config.nodeTtlMs, onError: (err) => log.debug({ err }, 'heartbeat failed') },
  );
  let running = 0;
  conversions.worker.on('active', () => registration.setExtra({ activeJobs: ++running }));
  const finished = (): void => registration.setExtra({ activeJobs: (running = Math.max(0, running - 1)) });
  conversions.worker.on('completed', finished);
  conversions.worker.on('failed', finished);
  registration.setExtra({ activeJobs: 0, concurrency: config.worker.concurrency });
  await registration.beat().catch((err: unknown) => log.warn({ err }, 'first heartbeat failed'));
  log.info({ node: nodeId, version: VERSION, concurrency: config.worker.concurrency, converter: config.worker.converterCommand ? 'command' : config.worker.converterMode }, 'worker ready');

  return {
    async stop() {
      await registration.drain().catch(() => undefined);
      await conversions.close(config.shutdownTimeoutMs);
      await exportWorker.close().catch(() => undefined);
      await exportQueue.close().catch(() => undefined);
      exportConnection.disconnect();
      exportQueueConnection.disconnect();
      await webhooks.close().catch(() => undefined);
      webhookQueueConnection.disconnect();
      webhookConnection.disconnect();
      await converter.close();
      await metricsServer?.close();
      await registration.leave().catch(() => undefined);
      await queue.close().catch(() => undefined);
      queueConnection.disconnect();
      connection.disconnect();
      await services.close();
    },
  };
}

export async function runWorker(config: Config, log: Logger): Promise<void> {
  const { stop } = await startWorker(config, log);
  onShutdown(log, config.shutdownTimeoutMs, stop);
}
