// Presigned uploads for files too large for a multipart request through the api:
//   POST /api/v1/uploads {name, size, quality?, root?, reuse?}  -> 201 {id, uploadUrl, method: "PUT", headers, expiresAt, completeUrl}
//   PUT <uploadUrl> with the file as body        (straight to S3)
//   POST /api/v1/uploads/:id/complete {root?}    -> 201 {id, state: "queued", ...} (the model; same id)
// An archive's root can also be named (or corrected after a 400 that lists the candidates) at
// completion: the stored archive stays until a completion succeeds or the upload expires.
// The api never reads these bytes, so their content hash is taken by the worker as it downloads
// them (and a ready model with the same bytes is reused there, without a conversion).
import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { routeSchemas } from '../openapi';
import { z } from 'zod';
import type { ApiContext } from '../context';
import { type Authenticate, scopeOf } from '../auth';
import { checkQuality, checkUploadName } from '../file-names';
import { HttpError } from '../../shared/http-errors';
import { admitModel, checkBatch, checkReuse, checkRoot, classifyUpload, inspectArchive } from '../intake';
import { objectKeys } from '../../shared/storage';
import { modelView } from './models';
import { checkTargets, exportView, requestExports } from './exports';

const createBody = z.object({
  name: z.string(),
  size: z.number().int().nonnegative(),
  quality: z.string().optional(),
  root: z.string().optional(),
  reuse: z.boolean().optional(),
  batch: z.string().optional(),
});

const completeBody = z.object({ root: z.string().optional(), targets: z.array(z.string()).optional() }).optional().nullable();

export function uploadRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate): void {
  const { maxPresignedBytes, presignExpiresSeconds, acceptedExtensions } = ctx.config.uploads;

  app.post('/api/v1/uploads', { schema: routeSchemas.createUpload }, async (request, reply) => {
    const principal = await authenticate(request);
    const parsed = createBody.safeParse(request.body);
    if (!parsed.success) {
      throw new HttpError(400, 'invalid_body', 'send JSON {"name": "part.step", "size": <bytes>, "quality"?: "coarse"|"normal"|"fine", "root"?: "<file in a .zip>", "reuse"?: false}');
    }
    const name = checkUploadName(parsed.data.name);
    const kind = classifyUpload(name, acceptedExtensions);
    const format = kind.format;
    const quality = checkQuality(parsed.data.quality);
    const root = checkRoot(parsed.data.root);
    const reuse = checkReuse(parsed.data.reuse);
    const batchId = await checkBatch(ctx, parsed.data.batch, principal.project);
    if (root !== undefined && !kind.archive) throw new HttpError(400, 'root_without_archive', 'root names a file inside an archive; this upload is a single file');
    const size = parsed.data.size;
    if (size === 0) throw new HttpError(400, 'empty_file', `the file ${JSON.stringify(name)} is empty (0 bytes)`);
    if (size > maxPresignedBytes) throw new HttpError(413, 'file_too_large', `the file is ${size} bytes; the limit is ${maxPresignedBytes} bytes`);
    const id = randomUUID();
    const objectKey = objectKeys.input(principal.project, id, format);
    const expiresAt = new Date(Date.now() + presignExpiresSeconds * 1000);
    const uploadUrl = await ctx.storage.presignPut(ctx.storage.uploadsBucket, objectKey, size, presignExpiresSeconds);
    await ctx.uploads.create({ id, project: principal.project, name, format, quality, size, objectKey, createdByKey: principal.keyId, expiresAt, archive: kind.archive ?? null, archiveRoot: root ?? null, reuse, batchId: batchId ?? null });
    return reply.code(201).send({
      id,
      uploadUrl,
      method: 'PUT',
      headers: { 'content-length': String(size) },
      expiresAt: expiresAt.toISOString(),
      completeUrl: `/api/v1/uploads/${id}/complete`,
    });
  });

  app.post<{ Params: { id: string } }>('/api/v1/uploads/:id/complete', { schema: routeSchemas.completeUpload }, async (request, reply) => {
    const principal = await authenticate(request);
    const scope = scopeOf(principal);
    const body = completeBody.safeParse(request.body);
    if (!body.success) throw new HttpError(400, 'invalid_body', 'send no body, or JSON {"root"?: "<file in the archive>", "targets"?: ["stl", ...]}');
    const upload = await ctx.uploads.get(request.params.id, scope);
    if (!upload) throw new HttpError(404, 'upload_not_found', `no upload ${JSON.stringify(request.params.id)} in this project`);
    if (upload.completedAt) {
      const model = await ctx.models.get(upload.id, scope);
      if (!model) throw new HttpError(410, 'upload_used', 'this upload was converted and the model has been deleted since');
      return reply.code(200).send(modelView(model));
    }
    const stored = await ctx.storage.head(ctx.storage.uploadsBucket, upload.objectKey);
    if (!stored) {
      const expired = upload.expiresAt.getTime() < Date.now();
      throw new HttpError(409, 'upload_missing', expired ? 'the upload URL expired before a file arrived; start a new upload' : 'no file has been uploaded to the upload URL yet');
    }
    const discard = () => ctx.storage.deleteKeys(ctx.storage.uploadsBucket, [upload.objectKey]).catch(() => undefined);
    if (stored.size === 0) {
      await discard();
      throw new HttpError(400, 'empty_file', `the uploaded file ${JSON.stringify(upload.name)} is empty (0 bytes)`);
    }
    if (stored.size > maxPresignedBytes) {
      await discard();
      throw new HttpError(413, 'file_too_large', `the uploaded file is ${stored.size} bytes; the limit is ${maxPresignedBytes} bytes`);
    }
    if (stored.size !== upload.size) {
      await discard();
      throw new HttpError(400, 'size_mismatch', `the upload announced ${upload.size} bytes but ${stored.size} arrived; start a new upload`);
    }
    // An archive's root is chosen before the completion is taken: a 400 here leaves the upload
    // as it is, for a completion that names the root.
    const requestedRoot = checkRoot(body.data?.root) ?? upload.archiveRoot ?? undefined;
    if (requestedRoot !== undefined && !upload.archive) throw new HttpError(400, 'root_without_archive', 'root names a file inside an archive; this upload is a single file');
    const archive = upload.archive ? await inspectArchive(ctx, upload.objectKey, stored.size, requestedRoot) : undefined;
    const targets = checkTargets(body.data?.targets?.join(','), archive?.format ?? upload.format);
    // Only one completion wins; a concurrent one answers with the model the winner creates.
    if (!(await ctx.uploads.markCompleted(upload.id))) {
      const model = await ctx.models.get(upload.id, scope);
      if (model) return reply.code(200).send(modelView(model));
      throw new HttpError(409, 'upload_in_progress', 'this upload is being completed by another request');
    }
    const model = await admitModel(ctx, {
      id: upload.id,
      project: upload.project,
      name: upload.name,
      format: archive?.format ?? upload.format,
      quality: upload.quality,
      inputKey: upload.objectKey,
      inputBytes: stored.size,
      createdByKey: principal.keyId,
      archive: upload.archive ?? undefined,
      archiveRoot: archive?.root,
      reuse: upload.reuse,
      batchId: upload.batchId ?? undefined,
    }, { keepInputOnFailure: true }).catch(async (err: unknown) => {
      await ctx.db.query('UPDATE uploads SET completed_at = NULL WHERE id = $1', [upload.id]).catch(() => undefined);
      throw err;
    });
    const exports = await requestExports(ctx, model, targets);
    ctx.metrics.uploads.inc({ kind: 'presigned' });
    return reply
      .code(201)
      .header('location', `/api/v1/models/${model.id}`)
      .send({ ...modelView(model), ...(exports.length ? { exports: exports.map(exportView) } : {}) });
  });
}
