// The api as a Fastify plugin: routes, authentication, the dependency gate and error replies.
// It never touches the process (listen, signals): that is process.ts's job.
import multipart from '@fastify/multipart';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { ApiContext } from './context';
import { authenticator } from './auth';
import { HttpError, errorBody, isDependencyError } from '../shared/http-errors';
import { modelRoutes } from './routes/models';
import { opsRoutes } from './routes/ops';
import { uploadRoutes } from './routes/uploads';
import { exportRoutes } from './routes/exports';
import { batchRoutes } from './routes/batches';
import { webhookRoutes } from './routes/webhooks';
import { createWebhookStore } from '../shared/webhooks/store';
import type { SessionService } from './stream-sessions';
import { viewerRoutes } from './viewer-static';
import { registerOpenApi } from './openapi';

export interface AppOptions {
  ctx: ApiContext;
  /** Streaming sessions (undefined without CADFLEET_STREAM_TOKEN_SECRET). */
  streaming?: SessionService;
}

/** Multipart parser failures that mean the request body is malformed, not that we are. */
const MALFORMED_MULTIPART = /Unexpected end of (form|file|multipart data)|Malformed|Boundary not found|Part terminated early|multipart/i;

const MULTIPART_CODES: Record<string, [number, string, string]> = {
  FST_INVALID_MULTIPART_CONTENT_TYPE: [415, 'not_multipart', 'send the file as multipart/form-data in a field named "file"'],
  FST_REQ_FILE_TOO_LARGE: [413, 'file_too_large', 'the file is larger than the upload limit (use POST /api/v1/uploads for large files)'],
  FST_FILES_LIMIT: [400, 'too_many_files', 'send one file per request'],
  FST_PARTS_LIMIT: [400, 'too_many_parts', 'the form has too many parts; send the file and at most the fields quality, root, reuse and targets'],
  FST_FIELDS_LIMIT: [400, 'too_many_fields', 'the form has too many fields; send the file and at most the fields quality, root, reuse and targets'],
  FST_PROTO_VIOLATION: [400, 'malformed_multipart', 'the form uses a forbidden field name'],
  FST_MP_PREMATURE_CLOSE: [400, 'malformed_multipart', 'the request ended before the multipart body was complete'],
  FST_INVALID_JSON_FIELD_ERROR: [400, 'malformed_multipart', 'a form field declared as JSON is not valid JSON'],
};

export async function cadfleetApp(app: FastifyInstance, options: AppOptions): Promise<void> {
  const { ctx } = options;
  const authenticate = authenticator(ctx.keys);
  const retryAfter = String(ctx.config.retryAfterSeconds);

  // preservePath: the raw file name reaches our check, which refuses path-like names
  // instead of quietly taking their last segment.
  await app.register(multipart, { preservePath: true, limits: { fileSize: ctx.config.uploads.maxBytes, files: 1 } });
  // Before the routes: it collects their schemas as they are added.
  await registerOpenApi(app);

  // A request that reaches this api once it has begun to close (on a connection kept alive from
  // before: its listening socket is closed) gets a 503 in the api's error shape, with the
  // connection closed after it. Another api answers the request sent again.
  app.addHook('onRequest', async (_request, reply) => {
    if (!ctx.closing()) return;
    return reply
      .code(503)
      .header('retry-after', '1')
      .header('connection', 'close')
      .send(errorBody(503, 'shutting_down', 'this api is shutting down; send the request again and another api answers it'));
  });

  // While PostgreSQL, Redis or S3 is down the api answers 503 at once instead of timing out.
  app.addHook('onRequest', async (request, reply) => {
    if (!request.url.startsWith('/api/')) return;
    const down = ctx.health.down();
    if (down.length) {
      return reply
        .code(503)
        .header('retry-after', retryAfter)
        .send(errorBody(503, 'dependency_unavailable', `${down.map((d) => d.name).join(', ')} unreachable; try again in ${retryAfter} s`));
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    ctx.metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    ctx.metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.setErrorHandler((err: FastifyError | HttpError, request, reply) => {
    if (err instanceof HttpError) {
      if (err.statusCode >= 500) request.log.warn({ code: err.code }, err.message);
      return reply.code(err.statusCode).headers(err.headers).send({ ...errorBody(err.statusCode, err.code, err.message), ...err.details });
    }
    // The client went away in the middle of its request (the LB cut a body that stalled, a tab
    // closed): nobody reads this answer. 499 (nginx's "client closed request") keeps it out of
    // the 5xx the alarms count; it was a 503 "dependency failed" (ECONNRESET) before the
    // reliability suite's slow-loris uploads showed it.
    if (request.raw.aborted || (err.message === 'aborted' && err.code === 'ECONNRESET')) {
      request.log.info({ err: err.message }, 'the client went away before its request was complete');
      return reply.code(499).send(errorBody(499, 'client_closed_request', 'the connection closed before the request was complete'));
    }
    const mapped = typeof err.code === 'string' ? MULTIPART_CODES[err.code] : undefined;
    if (mapped) return reply.code(mapped[0]).send(errorBody(...mapped));
    if (isDependencyError(err)) {
      request.log.warn({ err }, 'a dependency failed during the request');
      return reply.code(503).header('retry-after', retryAfter).send(errorBody(503, 'dependency_unavailable', 'a storage service is unreachable; try again shortly'));
    }
    // A body type no parser takes (application/octet-stream, say) is a 415, as the docs say, not a
    // 400 (found by the reliability suite's wrong-content-type upload).
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send(errorBody(415, 'unsupported_media_type', `${err.message}: send multipart/form-data (uploads) or application/json`));
    }
    if (err.validation || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err.statusCode === 400) {
      return reply.code(400).send(errorBody(400, 'bad_request', err.message));
    }
    if (err.statusCode === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return reply.code(413).send(errorBody(413, 'body_too_large', err.message));
    if (err.statusCode === 415) return reply.code(415).send(errorBody(415, 'unsupported_media_type', err.message));
    if (request.isMultipart?.() && MALFORMED_MULTIPART.test(err.message)) {
      return reply.code(400).send(errorBody(400, 'malformed_multipart', `the multipart body is malformed: ${err.message}`));
    }
    request.log.error({ err }, 'request failed');
    return reply.code(500).send(errorBody(500, 'internal', 'the request failed on our side; it has been logged'));
  });

  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(404, 'not_found', `no route ${request.method} ${request.url.split('?')[0]}`));
  });

  // The description of the v1 API, as the routes declare it (no key needed to read it).
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  opsRoutes(app, ctx, authenticate);
  modelRoutes(app, ctx, authenticate, options.streaming);
  uploadRoutes(app, ctx, authenticate);
  exportRoutes(app, ctx, authenticate);
  batchRoutes(app, ctx, authenticate);
  webhookRoutes(app, ctx, authenticate, createWebhookStore(ctx.db));
  // Single-machine mode: the viewer from the api (in a fleet nginx serves it on the LB).
  if (ctx.config.viewerDir) await viewerRoutes(app, ctx.config.viewerDir);
}
