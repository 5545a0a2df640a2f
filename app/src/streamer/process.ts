// The streamer process edge: Redis, S3, the HTTP server (WebSocket upgrades, /healthz, /readyz,
// /metrics) on CADFLEET_STREAM_PORT, heartbeats with the session count, and the drain on SIGTERM.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram } from 'prom-client';
import { type StreamerConfig, nodeIdFor } from '../shared/config';
import type { Logger } from '../shared/logger';
import { waitUntilUnrouted } from '../shared/registry';
import { advertisedHost } from '../shared/advertise';
import { createServices } from '../shared/services';
import { onShutdown } from '../shared/shutdown';
import { VERSION } from '../shared/version';
import { createModelStore } from './model-cache';
import { createSessionStore } from '../shared/stream-sessions';
import { createStreamer } from './streamer';

/** Connection strings can carry passwords; nothing this process starts needs them. */
const INHERITABLE_SECRETS = ['CADFLEET_REDIS_URL', 'CADFLEET_STREAM_TOKEN_SECRET', 'CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS', 'CADFLEET_DATABASE_URL'];

export interface RunningStreamer {
  port: number;
  nodeId: string;
  stop(): Promise<void>;
}

export async function startStreamer(config: StreamerConfig, log: Logger): Promise<RunningStreamer> {
  for (const name of INHERITABLE_SECRETS) delete process.env[name];
  const nodeId = nodeIdFor(config, 'streamer');
  // The services every process has, without PostgreSQL: a streamer never talks to it.
  const services = await createServices(
    { redis: config.redis, s3: config.s3, s3CheckMs: config.s3CheckMs, dependencyTimeoutMs: config.dependencyTimeoutMs },
    log,
    'streamer',
    nodeId,
  );
  const { redis, storage, registry, health, metrics } = services;
  const sessions = createSessionStore(redis, config.redis.prefix, config.stream.sessionTtlMs);
  health.start(config.dependencyCheckMs);

  const reg = [metrics.registry];
  const sessionsGauge = new Gauge({ name: 'cadfleet_stream_sessions', help: 'Open streaming sessions', registers: reg });
  const refusals = new Counter({ name: 'cadfleet_stream_refusals_total', help: 'Refused stream connections by code', labelNames: ['code'], registers: reg });
  const finished = new Counter({ name: 'cadfleet_stream_sessions_total', help: 'Finished stream connections by outcome', labelNames: ['outcome'], registers: reg });
  const frames = new Counter({ name: 'cadfleet_stream_frames_total', help: 'Geometry frames sent', registers: reg });
  const bytes = new Counter({ name: 'cadfleet_stream_bytes_total', help: 'Geometry bytes sent', registers: reg });
  const firstFrame = new Histogram({
    name: 'cadfleet_stream_first_frame_seconds',
    help: 'From WebSocket open to the first geometry frame sent',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: reg,
  });

  const store = createModelStore({
    storage,
    dir: config.stream.cacheDir,
    maxDiskBytes: config.stream.cacheMaxBytes,
    maxMemoryBytes: config.stream.memoryCacheMaxBytes,
    chunkTriangles: config.stream.chunkTriangles,
    log: log.child({ component: 'model-cache' }),
  });
  metrics.gauge('cadfleet_stream_cache_memory_bytes', 'Prepared models held in memory', [], async (set) => set({}, store.stats().memoryBytes));

  // Registered once the port is known; the session count is published from the start.
  const node: { registration?: ReturnType<typeof registry.register> } = {};
  let beatTimer: NodeJS.Timeout | undefined;
  // Registry fields of a streamer: sessions, maxSessions, load (what the api picks by) and live
  // (JSON, the oldest LIVE_LISTED open sessions, for /status).
  const LIVE_LISTED = 50;
  const setLoad = (count: number): void =>
    node.registration?.setExtra({
      sessions: count,
      maxSessions: config.stream.maxSessions,
      load: Math.round((count / config.stream.maxSessions) * 1000) / 1000,
      live: JSON.stringify(streamer.live().slice(0, LIVE_LISTED)),
    });
  const publishLoad = (count: number): void => {
    sessionsGauge.set(count);
    setLoad(count);
    // The api picks the least-loaded streamer from the registry: tell it soon, not at the next beat.
    beatTimer ??= setTimeout(() => {
      beatTimer = undefined;
      void node.registration?.beat().catch(() => undefined);
    }, 100);
  };

  // Stream connections count in cadfleet_http_requests_total like HTTP requests, with the status
  // their refusal would have (the CloudWatch agent publishes 5xx of api and streamers as Http5xx).
  const STREAM_ROUTE = '/stream/:node/:session';
  const REFUSAL_STATUS: Record<string, string> = {
    token_missing: '401',
    token_invalid: '401',
    token_expired: '401',
    token_mismatch: '401',
    session_not_found: '404',
    wrong_node: '421',
    session_limit: '429',
    draining: '503',
    hello_timeout: '408',
    bad_message: '400',
    model_unavailable: '500',
  };
  const countStream = (status: string): void => metrics.httpRequests.inc({ method: 'GET', route: STREAM_ROUTE, status });

  const streamer = createStreamer({
    nodeId,
    settings: {
      tokenSecret: config.stream.tokenSecret,
      previousTokenSecret: config.stream.previousTokenSecret,
      maxSessions: config.stream.maxSessions,
      idleTimeoutMs: config.stream.idleTimeoutMs,
      helloTimeoutMs: config.stream.helloTimeoutMs,
      pingIntervalMs: config.stream.pingIntervalMs,
      windowBytes: config.stream.windowBytes,
      sendBufferBytes: config.stream.sendBufferBytes,
    },
    sessions,
    store,
    log,
    events: {
      refused: (code) => {
        refusals.inc({ code });
        countStream(REFUSAL_STATUS[code] ?? '400');
      },
      firstFrame: (ms) => firstFrame.observe(ms / 1000),
      frame: (n) => {
        frames.inc();
        bytes.inc(n);
      },
      finished: (outcome) => {
        finished.inc({ outcome });
        if (outcome === 'complete' || outcome === 'resume') countStream('101');
      },
    },
    onCount: publishLoad,
  });

  const server = http.createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0] ?? '/';
    res.once('finish', () => metrics.httpRequests.inc({ method: req.method ?? 'GET', route: ['/healthz', '/readyz', '/metrics'].includes(url) ? url : 'unmatched', status: String(res.statusCode) }));
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { statusCode: 405, code: 'method_not_allowed', message: 'GET only' });
    if (url === '/healthz') {
      return json(200, { status: 'ok', node: nodeId, role: 'streamer', version: VERSION, state: streamer.draining() ? 'draining' : 'active', sessions: streamer.count() });
    }
    if (url === '/readyz') {
      void health.check().then((deps) => {
        const down = deps.filter((d) => !d.ok);
        if (streamer.draining()) return json(503, { statusCode: 503, code: 'draining', message: 'this node is draining', dependencies: deps });
        if (down.length) return json(503, { statusCode: 503, code: 'dependency_unavailable', message: `not ready: ${down.map((d) => d.name).join(', ')}`, dependencies: deps });
        return json(200, { status: 'ready', dependencies: deps });
      });
      return;
    }
    // Private network only, like the api's: the LB routes /stream/ and nothing else here.
    if (url === '/metrics') {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(text);
      });
      return;
    }
    json(404, { statusCode: 404, code: 'not_found', message: 'streaming sessions are WebSocket connections on /stream/<node>/<session>' });
  });
  server.on('upgrade', (req, socket, head) => streamer.handleUpgrade(req, socket, head));
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.http.port, config.http.host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  const registration = (node.registration = registry.register(
    { id: nodeId, role: 'streamer', version: VERSION, address: config.advertiseUrl ?? `http://${advertisedHost(config.http.host)}:${port}` },
    { intervalMs: config.heartbeatMs, ttlMs: config.nodeTtlMs, onError: (err) => log.debug({ err }, 'heartbeat failed') },
  ));
  publishLoad(0);
  // Progress of the open sessions changes between count changes: refresh it before each beat.
  const liveTimer = setInterval(() => setLoad(streamer.count()), Math.max(100, config.heartbeatMs - 50));
  liveTimer.unref();
  await registration.beat().catch((err: unknown) => log.warn({ err }, 'first heartbeat failed'));
  log.info({ port, node: nodeId, version: VERSION, maxSessions: config.stream.maxSessions }, 'streamer listening');

  return {
    port,
    nodeId,
    async stop() {
      // Draining first: the api stops picking this node; the LB keeps routing its open sessions.
      await registration.drain().catch(() => undefined);
      const result = await streamer.drain(config.stream.drainTimeoutMs);
      log.info(result, 'drained');
      // Leave the registry, then keep answering (new connections get 4000 draining) until the LB
      // has dropped this node: a client sent here meanwhile resumes elsewhere instead of meeting a 502.
      clearTimeout(beatTimer);
      clearInterval(liveTimer);
      await registration.leave().catch(() => undefined);
      await waitUntilUnrouted(redis, config.redis.prefix, (routing) => routing.streamers.has(nodeId), config.lbDeregisterTimeoutMs, log);
      streamer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await services.close();
    },
  };
}

export async function runStreamer(config: StreamerConfig, log: Logger): Promise<void> {
  const { stop } = await startStreamer(config, log);
  onShutdown(log, config.stream.drainTimeoutMs + config.lbDeregisterTimeoutMs + 5000, stop);
}
