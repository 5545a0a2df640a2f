// /api/v1/models/:id/exports: derived files of a model (STL, OBJ + MTL, plain GLB, and STEP or
// IGES for B-rep uploads), asked for with the upload (`targets`) or later on a ready model.
import type { FastifyInstance } from 'fastify';
import { routeSchemas } from '../openapi';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { type Authenticate, scopeOf } from '../auth';
import { TARGETS, TARGET_FILES, type Target, TargetError, parseTargets } from '../../converter/export/index';
import type { ModelExport } from '../../shared/exports';
import { HttpError } from '../../shared/http-errors';
import type { Model } from '../../shared/models';

export function exportView(e: ModelExport) {
  return {
    format: e.format,
    state: e.state,
    ...(e.error ? { error: e.error, errorCode: e.errorCode ?? undefined } : {}),
    ...(e.bytes !== null ? { size: e.bytes } : {}),
    ...(e.triangles !== null ? { triangles: e.triangles } : {}),
    attempts: e.attempts,
    createdAt: e.createdAt.toISOString(),
    ...(e.finishedAt ? { finishedAt: e.finishedAt.toISOString() } : {}),
    href: `/api/v1/models/${e.modelId}/exports/${e.format}`,
  };
}

/** `targets` of a request as the api's error when one is not possible for this input. */
export function checkTargets(value: unknown, sourceFormat: string | undefined): Target[] {
  try {
    return parseTargets(value, sourceFormat);
  } catch (err) {
    if (err instanceof TargetError) throw new HttpError(400, /needs a B-rep/.test(err.message) ? 'target_not_applicable' : 'invalid_target', err.message);
    throw err;
  }
}

/**
 * Rows for the targets, and their jobs when the model is ready. The worker that finishes a
 * conversion queues the exports it finds waiting; the check here covers one that finished just
 * before the rows were written (job ids make queueing twice harmless).
 */
export async function requestExports(ctx: ApiContext, model: Model, targets: Target[]): Promise<ModelExport[]> {
  if (targets.length === 0) return [];
  const rows = await ctx.exports.request(model.id, targets);
  const now = model.state === 'ready' ? model : await ctx.models.get(model.id, {});
  if (now?.state === 'ready') await ctx.exportQueue.enqueue(model.id, (await ctx.exports.queued(model.id)).map((e) => e.format));
  return rows;
}

const postBody = z.object({ targets: z.array(z.string()).min(1).max(TARGETS.length) });

export function exportRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate): void {
  const findModel = async (request: { params: { id: string } }, principal: Parameters<typeof scopeOf>[0]): Promise<Model> => {
    const model = await ctx.models.get(request.params.id, scopeOf(principal));
    if (!model) throw new HttpError(404, 'model_not_found', `no model ${JSON.stringify(request.params.id)} in this project`);
    return model;
  };

  app.post<{ Params: { id: string } }>('/api/v1/models/:id/exports', { schema: routeSchemas.requestExports }, async (request, reply) => {
    const principal = await authenticate(request);
    const model = await findModel(request, principal);
    const body = postBody.safeParse(request.body);
    if (!body.success) throw new HttpError(400, 'invalid_body', `send JSON {"targets": ["stl", ...]} with targets from ${TARGETS.join(', ')}`);
    if (model.state === 'failed') throw new HttpError(409, 'model_failed', `the model failed to convert (${model.error ?? 'no reason recorded'}); it has nothing to export: upload it again`);
    if (model.state !== 'ready') throw new HttpError(409, 'model_not_ready', `the model is ${model.state}; ask for exports once it is ready, or name them as "targets" with the upload`);
    const targets = checkTargets(body.data.targets.join(','), model.format);
    const rows = await requestExports(ctx, model, targets);
    return reply.code(202).send({ exports: rows.map(exportView) });
  });

  app.get<{ Params: { id: string } }>('/api/v1/models/:id/exports', { schema: routeSchemas.listExports }, async (request) => {
    const principal = await authenticate(request);
    const model = await findModel(request, principal);
    return { exports: (await ctx.exports.list(model.id)).map(exportView) };
  });

  app.get<{ Params: { id: string; format: string } }>('/api/v1/models/:id/exports/:format', { schema: routeSchemas.getExport }, async (request, reply) => {
    const principal = await authenticate(request);
    const model = await findModel(request, principal);
    const format = request.params.format as Target;
    const row = (TARGETS as readonly string[]).includes(format) ? await ctx.exports.get(model.id, format) : undefined;
    if (!row) throw new HttpError(404, 'export_not_found', `this model has no ${JSON.stringify(request.params.format)} export; ask for one with POST /api/v1/models/${model.id}/exports`);
    if (row.state !== 'ready' || !row.objectKey) return reply.send(exportView(row));
    const expiresIn = ctx.config.exports.urlExpiresSeconds;
    const base = model.name.replace(/\.[^.]*$/, '') || 'model';
    const url = await ctx.storage.presignGet(ctx.storage.modelsBucket, row.objectKey, expiresIn, `${base}.${TARGET_FILES[format].ext}`);
    return reply.header('cache-control', 'no-store').send({ ...exportView(row), url, expiresAt: new Date(Date.now() + expiresIn * 1000).toISOString() });
  });
}
