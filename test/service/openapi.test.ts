// The OpenAPI description against the routes: every v1 route is described and nothing else is
// (the app's own route table, collected as Fastify registers it), and real answers of the running
// api (PostgreSQL, Redis, s3rver) validate against the schemas the routes declare.
import fs from 'node:fs';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiContext } from '../../app/src/api/context';
import { cadfleetApp } from '../../app/src/api/app';
import { loadConfig } from '../../app/src/shared/config';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, startHarness } from './harness';

interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }>>;
}

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let doc: OpenApi;

beforeAll(async () => {
  h = await startHarness('openapi');
  api = await h.start('api', { nodeId: 'api-1' });
  await h.start('worker', { nodeId: 'worker-1' });
  client = apiClient(api.url, await h.createKey('acme'));
  const r = await client.json<OpenApi>('GET', '/api/v1/openapi.json', { key: null });
  expect(r.status).toBe(200);
  doc = r.body;
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

describe('the OpenAPI description', () => {
  it('describes exactly the routes the api registers under /api/v1', async () => {
    // The app plugin's route table, collected as Fastify adds routes (no services needed to register).
    const app = Fastify();
    const routes: string[] = [];
    app.addHook('onRoute', (r) => {
      for (const method of [r.method].flat()) if (r.url.startsWith('/api/v1/') && r.url !== '/api/v1/openapi.json' && method !== 'HEAD') routes.push(`${method.toLowerCase()} ${r.url.replace(/:(\w+)/g, '{$1}')}`);
    });
    const config = loadConfig({ CADFLEET_DATABASE_URL: 'postgres://x@127.0.0.1/x', CADFLEET_REDIS_URL: 'redis://127.0.0.1:6379', CADFLEET_S3_UPLOADS_BUCKET: 'cadfleet-uploads', CADFLEET_S3_MODELS_BUCKET: 'cadfleet-models', AWS_REGION: 'us-east-1' });
    await app.register(cadfleetApp, { ctx: { config, db: {} } as unknown as ApiContext });
    await app.ready();
    const described = Object.entries(doc.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m} ${p}`));
    expect(routes.length).toBeGreaterThan(15);
    expect(described.sort()).toEqual([...new Set(routes)].sort());
    await app.close();
  });

  it('matches what the api answers', async () => {
    expect(doc.openapi).toBe('3.0.3');
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema(doc, 'openapi');
    const check = (method: string, path: string, status: number, body: unknown): void => {
      const pointer = `openapi#/paths/${path.replace(/~/g, '~0').replace(/\//g, '~1')}/${method}/responses/${status}/content/application~1json/schema`;
      const validate = ajv.compile({ $ref: pointer });
      expect(validate(body), `${method} ${path} ${status}: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(body).slice(0, 500)}`).toBe(true);
    };

    const form = new FormData();
    form.append('targets', 'stl');
    form.append('file', new Blob([fs.readFileSync(SAMPLES.cube)]), 'cube.stp');
    const up = await client.json('POST', '/api/v1/models', { body: form });
    check('post', '/api/v1/models', 201, up.body);
    const id = String(up.body.id);
    const ready = await client.waitForState(id, ['ready']);
    check('get', '/api/v1/models/{id}', 200, (await client.json('GET', `/api/v1/models/${id}`)).body);
    void ready;
    check('get', '/api/v1/models', 200, (await client.json('GET', '/api/v1/models')).body);
    check('get', '/api/v1/models/{id}', 404, (await client.json('GET', '/api/v1/models/00000000-0000-4000-8000-000000000000')).body);
    check('post', '/api/v1/models', 415, (await client.json('POST', '/api/v1/models', { body: 'x', headers: { 'content-type': 'text/plain' } })).body);

    const asked = await client.json('POST', `/api/v1/models/${id}/exports`, { body: JSON.stringify({ targets: ['obj'] }), headers: { 'content-type': 'application/json' } });
    check('post', '/api/v1/models/{id}/exports', 202, asked.body);
    check('get', '/api/v1/models/{id}/exports', 200, (await client.json('GET', `/api/v1/models/${id}/exports`)).body);
    check('get', '/api/v1/models/{id}/exports/{format}', 200, (await client.json('GET', `/api/v1/models/${id}/exports/stl`)).body);

    check('post', '/api/v1/uploads', 201, (await client.json('POST', '/api/v1/uploads', { body: JSON.stringify({ name: 'a.stl', size: 10 }), headers: { 'content-type': 'application/json' } })).body);
    const batch = await client.json('POST', '/api/v1/batches', { body: JSON.stringify({ name: 'b' }), headers: { 'content-type': 'application/json' } });
    check('post', '/api/v1/batches', 201, batch.body);
    check('get', '/api/v1/batches/{id}', 200, (await client.json('GET', `/api/v1/batches/${String(batch.body.id)}`)).body);
    check('get', '/api/v1/batches', 200, (await client.json('GET', '/api/v1/batches')).body);
    check('post', '/api/v1/batches/{id}/start', 200, (await client.json('POST', `/api/v1/batches/${String(batch.body.id)}/start`)).body);
    check('post', '/api/v1/batches/{id}/start', 409, (await client.json('POST', `/api/v1/batches/${String(batch.body.id)}/start`)).body);
    check('post', '/api/v1/webhooks', 400, (await client.json('POST', '/api/v1/webhooks', { body: JSON.stringify({ url: 'https://169.254.169.254/' }), headers: { 'content-type': 'application/json' } })).body);
    check('get', '/api/v1/webhooks', 200, (await client.json('GET', '/api/v1/webhooks')).body);
  });
});
