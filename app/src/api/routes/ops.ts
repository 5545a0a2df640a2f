// Operational endpoints: /healthz (process alive), /readyz (dependencies), /metrics, /status.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ApiContext } from '../context';
import { type Authenticate, requireAdmin } from '../auth';
import { errorBody } from '../../shared/http-errors';
import { type StatusDocument, renderStatusHtml, statusNode } from '../status-page';
import { modelView } from './models';

/** JSON when asked for by `?format=json` or an Accept header that prefers it over HTML. */
function wantsJson(request: FastifyRequest): boolean {
  const format = (request.query as Record<string, string | undefined>).format;
  if (format) return format === 'json';
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

export async function statusDocument(ctx: ApiContext): Promise<StatusDocument> {
  const now = Date.now();
  // Each part degrades on its own: the page is most needed when something is down.
  const [nodes, queue, counts, recent] = await Promise.all([
    ctx.registry.list(ctx.config.nodeTtlMs).catch(() => []),
    ctx.queue.counts().catch(() => null),
    ctx.models.countByState().catch(() => null),
    ctx.models.list({}, {}, { limit: 20, binding: 'status' }).then((page) => page.items).catch(() => []),
  ]);
  return {
    generatedAt: new Date(now).toISOString(),
    servedBy: { node: ctx.nodeId, version: ctx.version },
    dependencies: ctx.health.current(),
    nodes: nodes.map((n) => statusNode(n, now)),
    queue,
    models: { counts, recent: recent.map(modelView) },
  };
}

export function opsRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate): void {
  app.get('/healthz', { logLevel: 'warn' }, async () => ({
    status: 'ok',
    node: ctx.nodeId,
    role: 'api',
    version: ctx.version,
    uptimeSeconds: Math.round((Date.now() - ctx.startedAt) / 1000),
  }));

  app.get('/readyz', { logLevel: 'warn' }, async (_request, reply: FastifyReply) => {
    const dependencies = await ctx.health.check();
    const down = dependencies.filter((d) => !d.ok);
    if (down.length) {
      return reply
        .code(503)
        .header('retry-after', String(ctx.config.retryAfterSeconds))
        .send({ ...errorBody(503, 'dependency_unavailable', `not ready: ${down.map((d) => `${d.name} (${d.error})`).join(', ')}`), dependencies });
    }
    return { status: 'ready', dependencies };
  });

  // Not routed by the LB: scraped on the private network only.
  app.get('/metrics', { logLevel: 'warn' }, async (_request, reply) => {
    reply.header('content-type', ctx.metrics.registry.contentType);
    return ctx.metrics.registry.metrics();
  });

  app.get('/status', async (request, reply) => {
    const principal = await authenticate(request, { basic: true });
    requireAdmin(principal);
    const doc = await statusDocument(ctx);
    reply.header('cache-control', 'no-store');
    if (wantsJson(request)) return doc;
    return reply.type('text/html; charset=utf-8').send(renderStatusHtml(doc));
  });
}
