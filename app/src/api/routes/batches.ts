// /api/v1/batches: uploads held together, started at once, followed as one status.
import type { FastifyInstance } from 'fastify';
import { routeSchemas } from '../openapi';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { type Authenticate, scopeOf } from '../auth';
import { batchView } from '../../shared/batches';
import { HttpError } from '../../shared/http-errors';
import { bindingOf, readPage } from '../../shared/pages';

const createBody = z.object({ name: z.string().max(200).optional() }).optional().nullable();

export function batchRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate): void {
  const notFound = (id: string) => new HttpError(404, 'batch_not_found', `no batch ${JSON.stringify(id)} in this project`);

  app.post('/api/v1/batches', { schema: routeSchemas.createBatch }, async (request, reply) => {
    const principal = await authenticate(request);
    const body = createBody.safeParse(request.body);
    if (!body.success) throw new HttpError(400, 'invalid_body', 'send no body, or JSON {"name": "..."}');
    const batch = await ctx.batches.create({ project: principal.project, name: body.data?.name, createdByKey: principal.keyId });
    return reply.code(201).header('location', `/api/v1/batches/${batch.id}`).send(batchView(batch));
  });

  app.get<{ Querystring: { limit?: string; cursor?: string } }>('/api/v1/batches', { schema: routeSchemas.listBatches }, async (request) => {
    const principal = await authenticate(request);
    const page = readPage(request.query, bindingOf('batches', scopeOf(principal).project, {}));
    const { items, next } = await ctx.batches.list(scopeOf(principal), page);
    return { batches: items.map(batchView), ...(next ? { next } : {}) };
  });

  app.get<{ Params: { id: string } }>('/api/v1/batches/:id', { schema: routeSchemas.getBatch }, async (request) => {
    const principal = await authenticate(request);
    const batch = await ctx.batches.get(request.params.id, scopeOf(principal));
    if (!batch) throw notFound(request.params.id);
    return batchView(batch);
  });

  // Queues every model of the batch; the batch ends (one batch.ended event) when all have ended.
  app.post<{ Params: { id: string } }>('/api/v1/batches/:id/start', { schema: routeSchemas.startBatch }, async (request) => {
    const principal = await authenticate(request);
    const scope = scopeOf(principal);
    const started = await ctx.batches.start(request.params.id, scope);
    if (!started) {
      const batch = await ctx.batches.get(request.params.id, scope);
      if (!batch) throw notFound(request.params.id);
      throw new HttpError(409, 'batch_not_open', `the batch is ${batch.state} already`);
    }
    // The models were written queued; their jobs go now (the requeue sweep covers a failure here).
    for (const model of started.toQueue) await ctx.queue.enqueue(model);
    request.log.info({ batch: started.batch.id, models: started.toQueue.length }, 'batch started');
    return batchView((await ctx.batches.get(started.batch.id, scope))!);
  });
}
