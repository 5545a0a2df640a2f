// The v1 API's OpenAPI description: every route declares its own `schema` (parameters, body,
// answers) and @fastify/swagger assembles them into the document served at
// GET /api/v1/openapi.json. The schemas describe; they do not change behaviour: the routes keep
// their own checks (zod, with the api's error codes), and answers are written as the routes
// build them. test/service/openapi.test.ts checks the document against the registered routes and
// real answers against the schemas.
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifySchema } from 'fastify';
import { bindingOf, encodeCursor } from '../shared/pages';
import { VERSION } from '../shared/version';

type Json = Record<string, unknown>;
const str = (description?: string, extra: Json = {}): Json => ({ type: 'string', ...(description ? { description } : {}), ...extra });
const int = (description?: string): Json => ({ type: 'integer', ...(description ? { description } : {}) });
const num = (description?: string): Json => ({ type: 'number', ...(description ? { description } : {}) });
const bool = (description?: string): Json => ({ type: 'boolean', ...(description ? { description } : {}) });
const dateTime = (description?: string): Json => str(description, { format: 'date-time' });
const array = (items: Json, description?: string): Json => ({ type: 'array', items, ...(description ? { description } : {}) });
const object = (properties: Record<string, Json>, required: string[] = [], description?: string): Json => ({
  type: 'object',
  properties,
  ...(required.length ? { required } : {}),
  additionalProperties: false,
  ...(description ? { description } : {}),
});
const MODEL_STATE = str('queued | converting | ready | failed', { enum: ['queued', 'converting', 'ready', 'failed'] });
const TARGET = str('a derived file', { enum: ['glb', 'stl', 'obj', 'step', 'iges'] });
const EVENT = str(undefined, { enum: ['model.queued', 'model.converting', 'model.ready', 'model.failed', 'model.deleted', 'batch.ended'] });

export const schemas = {
  Error: object(
    {
      statusCode: int(),
      error: str('the HTTP reason phrase'),
      code: str('stable, for programs'),
      message: str('for people: what was wrong and what to do'),
      candidates: array(str(), 'archive_root_ambiguous: the model files the archive holds'),
      parameter: str('a query parameter that was wrong (invalid_cursor, invalid_limit, a bad filter)'),
      dependencies: array({ type: 'object' }),
    },
    ['statusCode', 'error', 'code', 'message'],
    'Every error of the api, and the load balancer\'s own refusals (413, 429, 502, 503, 504), in one shape; 429 and 503 carry Retry-After',
  ),
  Stats: object({ triangles: int(), parts: int(), inputBytes: int(), outputBytes: int(), seconds: num() }, ['triangles', 'parts', 'inputBytes', 'outputBytes', 'seconds']),
  Export: object(
    {
      format: TARGET,
      state: MODEL_STATE,
      error: str(),
      errorCode: str(),
      size: int('bytes'),
      triangles: int(),
      attempts: int(),
      createdAt: dateTime(),
      finishedAt: dateTime(),
      href: str('GET it for a download link'),
      url: str('a presigned download link (ready exports, on GET /exports/{format})'),
      expiresAt: dateTime('when url stops working'),
    },
    ['format', 'state', 'attempts', 'createdAt', 'href'],
  ),
  Model: object(
    {
      id: str(undefined, { format: 'uuid' }),
      name: str('the uploaded file name (a label)'),
      state: MODEL_STATE,
      progress: int('0 to 100'),
      error: str(),
      errorCode: str(),
      stats: { $ref: 'Stats#' },
      project: str(),
      format: str('the converted file\'s extension (an archive\'s root\'s)'),
      quality: str(undefined, { enum: ['coarse', 'normal', 'fine'] }),
      size: int('uploaded bytes'),
      createdAt: dateTime(),
      updatedAt: dateTime(),
      startedAt: dateTime(),
      finishedAt: dateTime(),
      workerHost: str(),
      files: { type: 'object', additionalProperties: str(), description: 'downloadable files by name (ready models)' },
      archive: str('zip, for an archive upload'),
      root: str('the file of the archive that was converted'),
      sha256: str('of the uploaded bytes'),
      reusedFrom: str('the model whose conversion of the same bytes this one reuses (no conversion ran)'),
      batch: str('the batch it was uploaded into'),
      exports: array({ $ref: 'Export#' }),
    },
    ['id', 'name', 'state', 'progress', 'project', 'format', 'quality', 'size', 'createdAt', 'updatedAt'],
  ),
  Session: object({ sessionId: str(), streamUrl: str('open it as is with a WebSocket client'), node: str(), resumed: bool() }, ['sessionId', 'streamUrl', 'node', 'resumed']),
  PresignedUpload: object(
    { id: str(), uploadUrl: str(), method: str(undefined, { enum: ['PUT'] }), headers: { type: 'object', additionalProperties: str() }, expiresAt: dateTime(), completeUrl: str() },
    ['id', 'uploadUrl', 'method', 'headers', 'expiresAt', 'completeUrl'],
  ),
  Webhook: object(
    { id: str(), url: str(), events: array(EVENT), description: str(), createdAt: dateTime(), secret: str('shown once, at creation') },
    ['id', 'url', 'events', 'createdAt'],
  ),
  Delivery: object(
    {
      id: str(),
      eventId: str('evt_<n>: the receiver\'s idempotency key'),
      state: str(undefined, { enum: ['pending', 'delivered', 'failed'] }),
      attempts: int(),
      lastStatus: int(),
      lastError: str(),
      createdAt: dateTime(),
      lastAttemptAt: dateTime(),
      deliveredAt: dateTime(),
    },
    ['id', 'eventId', 'state', 'attempts', 'createdAt'],
  ),
  Batch: object(
    {
      id: str(),
      name: str(),
      state: str(undefined, { enum: ['open', 'started', 'ended'] }),
      total: int(),
      counts: object({ queued: int(), converting: int(), ready: int(), failed: int() }, ['queued', 'converting', 'ready', 'failed']),
      createdAt: dateTime(),
      startedAt: dateTime(),
      endedAt: dateTime(),
    },
    ['id', 'state', 'total', 'counts', 'createdAt'],
  ),
} satisfies Record<string, Json>;

const ref = (name: keyof typeof schemas): Json => ({ $ref: `${name}#` });
const errors = (...statuses: number[]): Record<number, Json> => Object.fromEntries(statuses.map((s) => [s, ref('Error')]));
const idParam = (what: string): Json => object({ id: str(`the ${what}'s id`) }, ['id']);
const KEYED = [{ bearer: [] }];

// Every list that grows without bound pages the same way: newest first, `limit` items, and a
// `next` token while more follow, passed back unchanged as `cursor` (with the same filters).
const CURSOR_EXAMPLE = encodeCursor({ at: '2026-12-07 10:15:03.456212+00', id: '3f6f2a9c-1b2c-4d5e-8f90-123456789abc' }, bindingOf('models', 'acme', {}));
const PAGE_QUERY = {
  limit: { ...int('items per page, 1 to 1000 (100)'), example: 100 },
  cursor: str('the `next` of the previous page, unchanged; leave it out for the newest. A cursor is bound to its list, project and filters: another is refused with 400 invalid_cursor', { example: CURSOR_EXAMPLE }),
};
const NEXT = str('present while more items follow: pass it as `cursor` for the next page; absent on the last page', { example: CURSOR_EXAMPLE });
const PAGING =
  'Pages are keyset pages on (createdAt, id), newest first: a walk from the first page to the last returns every item that existed when it began exactly once, in order, whatever is inserted meanwhile (new items come before the first page). ' +
  'Example: `GET ?limit=2` answers `{"items": [...], "next": "eyJi…"}`; `GET ?limit=2&cursor=eyJi…` the two after them; the last page has no `next`.';

/** Route schemas by name; the routes take theirs from here. */
export const routeSchemas = {
  uploadModel: {
    summary: 'Upload a model (or a .zip of one with its companion files) and start its conversion',
    tags: ['models'],
    consumes: ['multipart/form-data'],
    querystring: object({ quality: str(), root: str(), reuse: str('false: convert even when the same bytes were converted before'), targets: str('comma-separated: stl,obj,glb,step,iges'), batch: str() }),
    body: object(
      {
        file: str('the file (last part of the form)', { format: 'binary' }),
        quality: str(undefined, { enum: ['coarse', 'normal', 'fine'] }),
        root: str('the file of a .zip to open'),
        reuse: str(),
        targets: str(),
        batch: str('an open batch to join'),
      },
      ['file'],
    ),
    response: { 201: ref('Model'), ...errors(400, 401, 404, 409, 413, 415, 503) },
    security: KEYED,
  },
  listModels: {
    summary: 'The project\'s models (every project\'s for an admin key), newest first, a page at a time, filtered',
    description: `${PAGING.replace('"items"', '"models"')} Filters combine (AND); each is served by an index. A batch's models: \`?batch=<id>\`.`,
    tags: ['models'],
    querystring: object({
      state: MODEL_STATE,
      namePrefix: str('names that start with this (case-sensitive)', { example: 'gearbox-' }),
      sha256: str('the SHA-256 of the uploaded bytes (a model\'s `sha256`): every upload of the same file', { pattern: '^[0-9a-f]{64}$', example: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' }),
      batch: str('the models uploaded into this batch', { format: 'uuid' }),
      createdAfter: dateTime('created at or after this time (RFC 3339, or a date: midnight UTC)'),
      createdBefore: dateTime('created before this time'),
      ...PAGE_QUERY,
    }),
    response: { 200: object({ models: array(ref('Model')), next: NEXT }, ['models']), ...errors(400, 401) },
    security: KEYED,
  },
  getModel: { summary: 'One model, with its exports', tags: ['models'], params: idParam('model'), response: { 200: ref('Model'), ...errors(401, 404) }, security: KEYED },
  getModelFile: {
    summary: 'A converted file: model.glb or manifest.json',
    tags: ['models'],
    params: object({ id: str(), name: str(undefined, { enum: ['model.glb', 'manifest.json'] }) }, ['id', 'name']),
    response: { 200: { description: 'the file' }, ...errors(401, 404, 409) },
    security: KEYED,
  },
  deleteModel: { summary: 'Delete a model and its files', tags: ['models'], params: idParam('model'), response: { 204: { description: 'deleted', type: 'null' }, ...errors(401, 404) }, security: KEYED },
  openSession: {
    summary: 'A streaming session on the least-loaded streamer, or the resume of one',
    tags: ['streaming'],
    params: idParam('model'),
    body: object({ resume: str('a session id to resume') }),
    response: { 200: ref('Session'), 201: ref('Session'), ...errors(400, 401, 404, 409, 503) },
    security: KEYED,
  },
  requestExports: {
    summary: 'Ask for derived files of a ready model',
    tags: ['exports'],
    params: idParam('model'),
    body: object({ targets: array(TARGET) }, ['targets']),
    response: { 202: object({ exports: array(ref('Export')) }, ['exports']), ...errors(400, 401, 404, 409) },
    security: KEYED,
  },
  listExports: { summary: 'A model\'s exports', tags: ['exports'], params: idParam('model'), response: { 200: object({ exports: array(ref('Export')) }, ['exports']), ...errors(401, 404) }, security: KEYED },
  getExport: {
    summary: 'One export; a ready one with a presigned download link',
    tags: ['exports'],
    params: object({ id: str(), format: TARGET }, ['id', 'format']),
    response: { 200: ref('Export'), ...errors(401, 404) },
    security: KEYED,
  },
  createUpload: {
    summary: 'Start a presigned upload (large files go straight to S3)',
    tags: ['uploads'],
    body: object({ name: str(), size: int(), quality: str(), root: str(), reuse: bool(), batch: str() }, ['name', 'size']),
    response: { 201: ref('PresignedUpload'), ...errors(400, 401, 404, 409, 413, 415) },
    security: KEYED,
  },
  completeUpload: {
    summary: 'The file is in S3: create the model and start its conversion',
    tags: ['uploads'],
    params: idParam('upload'),
    body: object({ root: str(), targets: array(TARGET) }),
    response: { 200: ref('Model'), 201: ref('Model'), ...errors(400, 401, 404, 409, 410, 413, 503) },
    security: KEYED,
  },
  createWebhook: {
    summary: 'Register an endpoint for the project\'s model events (signed deliveries)',
    tags: ['webhooks'],
    body: object({ url: str(), events: array(EVENT), description: str() }, ['url']),
    response: { 201: ref('Webhook'), ...errors(400, 401) },
    security: KEYED,
  },
  listWebhooks: { summary: 'The project\'s webhook endpoints', tags: ['webhooks'], response: { 200: object({ webhooks: array(ref('Webhook')) }, ['webhooks']), ...errors(401) }, security: KEYED },
  deleteWebhook: { summary: 'Remove an endpoint', tags: ['webhooks'], params: idParam('webhook'), response: { 204: { description: 'deleted', type: 'null' }, ...errors(401, 404) }, security: KEYED },
  listDeliveries: {
    summary: 'An endpoint\'s delivery log, newest first',
    tags: ['webhooks'],
    description: PAGING.replace('"items"', '"deliveries"'),
    params: idParam('webhook'),
    querystring: object(PAGE_QUERY),
    response: { 200: object({ deliveries: array(ref('Delivery')), next: NEXT }, ['deliveries']), ...errors(400, 401, 404) },
    security: KEYED,
  },
  events: {
    summary: 'The project\'s events as Server-Sent Events (Last-Event-ID replays what was missed)',
    tags: ['webhooks'],
    querystring: object({ after: int('replay events after this id') }),
    response: { 200: { description: 'text/event-stream: id, event (the type), data (the webhook body)' }, ...errors(400, 401) },
    security: KEYED,
  },
  createBatch: { summary: 'A batch to upload into', tags: ['batches'], body: object({ name: str() }), response: { 201: ref('Batch'), ...errors(400, 401) }, security: KEYED },
  listBatches: {
    summary: 'The project\'s batches, newest first, a page at a time (a batch\'s models: GET /api/v1/models?batch=<id>)',
    description: PAGING.replace('"items"', '"batches"'),
    tags: ['batches'],
    querystring: object(PAGE_QUERY),
    response: { 200: object({ batches: array(ref('Batch')), next: NEXT }, ['batches']), ...errors(400, 401) },
    security: KEYED,
  },
  getBatch: { summary: 'A batch\'s status: counts of its models by state', tags: ['batches'], params: idParam('batch'), response: { 200: ref('Batch'), ...errors(401, 404) }, security: KEYED },
  startBatch: { summary: 'Queue every model of the batch', tags: ['batches'], params: idParam('batch'), response: { 200: ref('Batch'), ...errors(401, 404, 409) }, security: KEYED },
} satisfies Record<string, FastifySchema & Json>;

/**
 * Registers @fastify/swagger (it collects the route schemas as routes are added: call this
 * before them) and makes the schemas descriptive only.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  for (const [name, schema] of Object.entries(schemas)) app.addSchema({ $id: name, ...schema });
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'cadfleet API', version: VERSION, description: 'Upload CAD models, convert them on the worker fleet, stream them to viewers. Every route needs `Authorization: Bearer <api key>`.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API key' } } },
    },
    refResolver: { buildLocalReference: (json) => String(json.$id) },
    // Only the v1 API (its routes carry tags): not /healthz, /status, /metrics or the viewer.
    hideUntagged: true,
  });
  // The routes check their input themselves (with the api's error codes) and send what they
  // build: the schemas are the description, not a second validator or a filter on answers.
  app.setValidatorCompiler(() => () => true);
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
}
