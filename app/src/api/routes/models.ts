// /api/v1/models: upload (multipart), list, state, files, delete, streaming sessions.
import { randomUUID } from 'node:crypto';
import { PassThrough, pipeline } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { routeSchemas } from '../openapi';
import type { ApiContext } from '../context';
import { type Authenticate, scopeOf } from '../auth';
import { sha256Tap } from '../../shared/content-hash';
import { checkQuality, checkUploadName } from '../file-names';
import { HttpError, isDependencyError } from '../../shared/http-errors';
import { admitOrReuse, checkBatch, checkReuse, checkRoot, classifyUpload, formField, inspectArchive } from '../intake';
// Batch ids are UUIDs, as model ids are.
import { MODEL_STATES, type ModelFilters, type ModelState, isModelId } from '../../shared/models';
import { LIST_TIME, SHA256_HEX, badParameter, bindingOf, readPage } from '../../shared/pages';
import { DOWNLOADABLE, modelView } from '../../shared/model-view';
import { checkTargets, exportView, requestExports } from './exports';
import type { Target } from '../../converter/export/index';
import { CONTENT_TYPES, type ModelFile, objectKeys } from '../../shared/storage';
import type { SessionService } from '../stream-sessions';

export { DOWNLOADABLE, type ModelView, modelView } from '../../shared/model-view';


function timeParameter(name: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const at = LIST_TIME.test(value) ? new Date(value) : undefined;
  if (!at || Number.isNaN(at.getTime())) throw badParameter(name, 'invalid_time', `${name} must be a time as 2026-12-07T10:00:00Z (or with an offset), or a date, got ${JSON.stringify(value)}`);
  return at;
}

/** The filters of GET /api/v1/models, each checked; a bad one is a 400 naming the parameter. */
export function modelFilters(query: Record<string, string | undefined>): ModelFilters {
  const { state, namePrefix, sha256, batch } = query;
  if (state !== undefined && !MODEL_STATES.includes(state as ModelState)) {
    throw badParameter('state', 'invalid_state', `state must be one of ${MODEL_STATES.join(', ')}, got ${JSON.stringify(state)}`);
  }
  if (namePrefix !== undefined && (namePrefix.length < 1 || namePrefix.length > 255)) {
    throw badParameter('namePrefix', 'invalid_name_prefix', 'namePrefix must be 1 to 255 characters');
  }
  if (sha256 !== undefined && !SHA256_HEX.test(sha256)) {
    throw badParameter('sha256', 'invalid_sha256', `sha256 must be 64 lowercase hex digits (the model's sha256), got ${JSON.stringify(sha256)}`);
  }
  if (batch !== undefined && !isModelId(batch)) throw badParameter('batch', 'invalid_batch', `batch must be a batch id (a UUID), got ${JSON.stringify(batch)}`);
  const createdAfter = timeParameter('createdAfter', query.createdAfter);
  const createdBefore = timeParameter('createdBefore', query.createdBefore);
  return { state: state as ModelState | undefined, namePrefix, sha256, batch, createdAfter, createdBefore };
}

const filterBinding = (f: ModelFilters): Record<string, string | undefined> => ({
  state: f.state,
  namePrefix: f.namePrefix,
  sha256: f.sha256,
  batch: f.batch,
  createdAfter: f.createdAfter?.toISOString(),
  createdBefore: f.createdBefore?.toISOString(),
});

const notFound = (id: string): HttpError => new HttpError(404, 'model_not_found', `no model ${JSON.stringify(id)} in this project`);

/** Multipart overhead allowed on top of the file size before Content-Length alone earns a 413. */
const MULTIPART_SLACK = 64 * 1024;

/** `streaming` is undefined when CADFLEET_STREAM_TOKEN_SECRET is not set: sessions answer 503. */
export function modelRoutes(app: FastifyInstance, ctx: ApiContext, authenticate: Authenticate, streaming?: SessionService): void {
  const accepted = ctx.config.uploads.acceptedExtensions;
  const maxBytes = ctx.config.uploads.maxBytes;

  app.post('/api/v1/models', { schema: routeSchemas.uploadModel }, async (request, reply) => {
    const principal = await authenticate(request);
    if (!request.isMultipart()) {
      throw new HttpError(415, 'not_multipart', 'send the file as multipart/form-data in a field named "file"');
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > maxBytes + MULTIPART_SLACK) {
      throw new HttpError(413, 'file_too_large', `the upload is ${declared} bytes; the limit is ${maxBytes} bytes (use POST /api/v1/uploads for large files)`);
    }
    const part = await request.file({ limits: { fileSize: maxBytes, files: 1, fields: 10, parts: 20 } });
    if (!part) throw new HttpError(400, 'no_file', 'the form has no file; send the file in a field named "file"');
    if (part.fieldname !== 'file') {
      part.file.resume();
      throw new HttpError(400, 'no_file', `the file came in a field named ${JSON.stringify(part.fieldname)}; use "file"`);
    }
    // Fields that come before the file in the form (or in the query string): quality, root, reuse.
    let name: string;
    let kind: ReturnType<typeof classifyUpload>;
    let quality: string;
    let root: string | undefined;
    let reuse: boolean;
    let targetsField: string | undefined;
    let batchId: string | undefined;
    try {
      name = checkUploadName(part.filename);
      kind = classifyUpload(name, accepted);
      quality = checkQuality(formField(part.fields, request.query, 'quality'));
      root = checkRoot(formField(part.fields, request.query, 'root'));
      reuse = checkReuse(formField(part.fields, request.query, 'reuse'));
      targetsField = formField(part.fields, request.query, 'targets');
      batchId = await checkBatch(ctx, formField(part.fields, request.query, 'batch'), principal.project);
      // A single file's targets are checked before a byte is stored; an archive's once its root is known.
      if (!kind.archive) checkTargets(targetsField, kind.format);
      else checkTargets(targetsField, undefined);
      if (root !== undefined && !kind.archive) throw new HttpError(400, 'root_without_archive', 'root names a file inside an archive; this upload is a single file');
    } catch (err) {
      part.file.resume();
      throw err;
    }

    const id = randomUUID();
    const key = objectKeys.input(principal.project, id, kind.format);
    let bytes = 0;
    const counted = new PassThrough();
    counted.on('data', (chunk: Buffer) => (bytes += chunk.length));
    // Hashed as it is stored: reuse by content costs no second read.
    const tap = sha256Tap();
    // pipeline, not pipe: the parser may already have destroyed the file stream with an error
    // (a body cut short) before this line runs, and only pipeline reports that.
    pipeline(part.file, tap, counted, () => undefined);
    const discard = () => ctx.storage.deleteKeys(ctx.storage.uploadsBucket, [key]).catch(() => undefined);
    const tooLarge = () =>
      new HttpError(413, 'file_too_large', `the file is larger than the limit of ${maxBytes} bytes (use POST /api/v1/uploads for large files)`);
    try {
      await ctx.storage.putStream(ctx.storage.uploadsBucket, key, counted, 'application/octet-stream');
    } catch (err) {
      await discard();
      if (part.file.truncated || (err as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') throw tooLarge();
      // The body broke off or is not valid multipart: the client's fault, not storage's.
      const broken = part.file.errored ?? counted.errored;
      if (broken && !isDependencyError(err)) throw new HttpError(400, 'malformed_multipart', `the multipart body is malformed: ${broken.message}`);
      throw err;
    }
    if (part.file.truncated) {
      await discard();
      throw tooLarge();
    }
    if (bytes === 0) {
      await discard();
      throw new HttpError(400, 'empty_file', `the file ${JSON.stringify(name)} is empty (0 bytes)`);
    }
    // PostgreSQL may go down between the gate and the insert (a restart during an upload): the
    // stored file must not stay behind without its row. A refused archive goes too.
    let targets: Target[] = [];
    const model = await (async () => {
      const archive = kind.archive ? await inspectArchive(ctx, key, bytes, root) : undefined;
      targets = checkTargets(targetsField, archive?.format ?? kind.format);
      return admitOrReuse(ctx, {
        id,
        project: principal.project,
        name,
        format: archive?.format ?? kind.format,
        quality,
        inputKey: key,
        inputBytes: bytes,
        createdByKey: principal.keyId,
        archive: kind.archive,
        archiveRoot: archive?.root,
        contentSha256: tap.hex(),
        reuse,
        batchId,
      });
    })().catch(async (err: unknown) => {
      await discard();
      throw err;
    });
    const exports = await requestExports(ctx, model, targets);
    ctx.metrics.uploads.inc({ kind: 'multipart' });
    request.log.info({ model: id, project: principal.project, bytes, format: model.format, archive: model.archive, reusedFrom: model.reusedFrom, targets }, 'upload accepted');
    return reply
      .code(201)
      .header('location', `/api/v1/models/${id}`)
      .send({ ...modelView(model), ...(exports.length ? { exports: exports.map(exportView) } : {}) });
  });

  app.get('/api/v1/models', { schema: routeSchemas.listModels }, async (request) => {
    const principal = await authenticate(request);
    const query = request.query as Record<string, string | undefined>;
    const filters = modelFilters(query);
    const page = readPage(query, bindingOf('models', scopeOf(principal).project, filterBinding(filters)));
    const { items, next } = await ctx.models.list(scopeOf(principal), filters, page);
    return { models: items.map(modelView), ...(next ? { next } : {}) };
  });

  app.get<{ Params: { id: string } }>('/api/v1/models/:id', { schema: routeSchemas.getModel }, async (request) => {
    const principal = await authenticate(request);
    const model = await ctx.models.get(request.params.id, scopeOf(principal));
    if (!model) throw notFound(request.params.id);
    const exports = await ctx.exports.list(model.id);
    return { ...modelView(model), ...(exports.length ? { exports: exports.map(exportView) } : {}) };
  });

  app.get<{ Params: { id: string; name: string } }>('/api/v1/models/:id/files/:name', { schema: routeSchemas.getModelFile }, async (request, reply) => {
    const principal = await authenticate(request);
    const model = await ctx.models.get(request.params.id, scopeOf(principal));
    if (!model) throw notFound(request.params.id);
    const file = request.params.name as ModelFile;
    if (!DOWNLOADABLE.includes(file)) {
      throw new HttpError(404, 'file_not_found', `a model has the files ${DOWNLOADABLE.join(' and ')}, not ${JSON.stringify(request.params.name)}`);
    }
    if (model.state !== 'ready' || !model.outputPrefix) {
      throw new HttpError(409, 'model_not_ready', `the model is ${model.state}${model.state === 'failed' ? '' : '; try again when its state is ready'}`);
    }
    const object = await ctx.storage.get(ctx.storage.modelsBucket, objectKeys.output(model.outputPrefix, file));
    if (!object) throw new HttpError(404, 'file_not_found', `the stored ${file} of this model is missing`);
    const base = model.name.replace(/\.[^.]*$/, '') || 'model';
    const download = file === 'model.glb' ? `${base}.glb` : `${base}.manifest.json`;
    reply
      .header('content-type', CONTENT_TYPES[file])
      .header('content-disposition', `attachment; filename="${download.replace(/[^\x20-\x7e]|["\\]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(download)}`)
      .header('cache-control', 'private, max-age=3600');
    if (object.contentLength !== undefined) reply.header('content-length', object.contentLength);
    if (object.etag) reply.header('etag', object.etag);
    return reply.send(object.body);
  });

  app.delete<{ Params: { id: string } }>('/api/v1/models/:id', { schema: routeSchemas.deleteModel }, async (request, reply) => {
    const principal = await authenticate(request);
    const model = await ctx.models.remove(request.params.id, scopeOf(principal));
    if (!model) throw notFound(request.params.id);
    // The row is gone first, so the model disappears at once; a worker still converting it
    // finds no row at the end and removes its own outputs. Leftover objects on an S3 failure
    // are orphans, never a model that lost its files.
    // Outputs that another model reuses (same bytes) stay until the last model using them goes.
    await ctx.queue.discard(model.id).catch(() => undefined);
    const prefixes = [...new Set([objectKeys.outputPrefix(model.project, model.id), ...(model.outputPrefix ? [model.outputPrefix] : [])])];
    await Promise.all([
      ctx.storage.deleteKeys(ctx.storage.uploadsBucket, [model.inputKey]),
      ...prefixes.map(async (prefix) => {
        if ((await ctx.models.countUsingOutputs(prefix)) === 0) await ctx.storage.deletePrefix(ctx.storage.modelsBucket, prefix);
      }),
    ]).catch((err: unknown) => request.log.warn({ err, model: model.id }, 'could not delete the stored files of a deleted model'));
    return reply.code(204).send();
  });

  // Body: nothing or {} for a new session; {"resume": "<sessionId>"} to resume one (on whichever
  // streamer is least loaded now). The client then opens streamUrl as is.
  app.post<{ Params: { id: string } }>('/api/v1/models/:id/sessions', { schema: routeSchemas.openSession }, async (request, reply) => {
    const principal = await authenticate(request);
    const model = await ctx.models.get(request.params.id, scopeOf(principal));
    if (!model) throw notFound(request.params.id);
    if (!streaming) {
      throw new HttpError(503, 'streaming_not_configured', 'streaming is not configured on this api (CADFLEET_STREAM_TOKEN_SECRET is not set)', {
        'retry-after': String(ctx.config.retryAfterSeconds),
      });
    }
    const body = request.body;
    if (body !== undefined && body !== null && (typeof body !== 'object' || Array.isArray(body))) {
      throw new HttpError(400, 'bad_request', 'the body must be a JSON object: {} or {"resume": "<sessionId>"}');
    }
    const resume = (body as { resume?: unknown } | undefined | null)?.resume;
    if (resume !== undefined && typeof resume !== 'string') throw new HttpError(400, 'invalid_resume', 'resume must be a session id string');
    const session = await streaming.open(model, resume);
    request.log.info({ model: model.id, session: session.sessionId, node: session.node, resumed: session.resumed }, 'stream session handed out');
    return reply.code(session.resumed ? 200 : 201).header('cache-control', 'no-store').send(session);
  });
}
