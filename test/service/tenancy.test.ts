// Keys belong to projects: a key sees only its project's models; admin keys see all and manage
// keys through the admin command.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, startHarness } from './harness';

let h: Harness;
let api: AppProcess;
let a: ApiClient;
let b: ApiClient;
let admin: ApiClient;
let keyA: string;
let modelA: string;

beforeAll(async () => {
  h = await startHarness('tenancy');
  api = await h.start('api');
  await h.start('worker');
  keyA = await h.createKey('project-a');
  a = apiClient(api.url, keyA);
  b = apiClient(api.url, await h.createKey('project-b'));
  admin = apiClient(api.url, await h.createKey('ops', true));
  const upload = await a.upload(SAMPLES.cube);
  expect(upload.status).toBe(201);
  modelA = String(upload.body.id);
  expect((await a.waitForState(modelA, ['ready', 'failed'])).state).toBe('ready');
});

afterAll(async () => {
  await h?.stop();
});

describe('tenant isolation', () => {
  it('hides a model from another project: read, list, download, stream and delete all answer 404', async () => {
    expect((await b.json('GET', `/api/v1/models/${modelA}`)).status).toBe(404);
    expect((await b.json<{ models: unknown[] }>('GET', '/api/v1/models')).body.models).toEqual([]);
    expect((await b.json('GET', `/api/v1/models/${modelA}/files/model.glb`)).status).toBe(404);
    expect((await b.json('GET', `/api/v1/models/${modelA}/files/manifest.json`)).status).toBe(404);
    expect((await b.json('POST', `/api/v1/models/${modelA}/sessions`)).status).toBe(404);
    const del = await b.json<{ code: string }>('DELETE', `/api/v1/models/${modelA}`);
    expect(del.status).toBe(404);
    expect(del.body.code).toBe('model_not_found');

    // Untouched for its owner.
    expect((await a.json('GET', `/api/v1/models/${modelA}`)).body.state).toBe('ready');
    expect((await a.request('GET', `/api/v1/models/${modelA}/files/model.glb`)).status).toBe(200);
  });

  it('keeps presigned uploads to their project', async () => {
    const created = await a.json<{ id: string; uploadUrl: string }>('POST', '/api/v1/uploads', {
      body: JSON.stringify({ name: 'cube.stp', size: fs.statSync(SAMPLES.cube).size }),
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status).toBe(201);
    await fetch(created.body.uploadUrl, { method: 'PUT', body: fs.readFileSync(SAMPLES.cube) });
    expect((await b.json('POST', `/api/v1/uploads/${created.body.id}/complete`)).status).toBe(404);
    expect((await a.json('POST', `/api/v1/uploads/${created.body.id}/complete`)).status).toBe(201);
  });

  it('answers 503 for streaming sessions of an own model while the api has no stream token secret', async () => {
    // Sessions themselves are tested in test/streamer/protocol.test.ts.
    const res = await a.json<{ code: string }>('POST', `/api/v1/models/${modelA}/sessions`);
    expect(res.status).toBe(503);
    expect(res.body.code).toBe('streaming_not_configured');
  });

  it('lets an admin key see every project', async () => {
    const list = await admin.json<{ models: Array<{ id: string; project: string }> }>('GET', '/api/v1/models');
    expect(list.body.models.map((m) => m.id)).toContain(modelA);
    expect((await admin.json('GET', `/api/v1/models/${modelA}`)).status).toBe(200);
  });
});

describe('the keys admin command', () => {
  it('creates, lists and revokes keys; a revoked key is refused at once', async () => {
    const created = await h.run(['keys', 'create', '--project', 'project-c', '--name', 'ci']);
    const lines = created.stdout.trim().split('\n');
    const key = lines.at(-1)!;
    expect(key).toMatch(/^cfk_[A-Za-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const id = key.slice(4, 16);
    const c = apiClient(api.url, key);
    expect((await c.json('GET', '/api/v1/models')).status).toBe(200);

    // Only a hash is stored.
    const stored = await h.db.query<{ secret_hash: Buffer }>('SELECT secret_hash FROM api_keys WHERE id = $1', [id]);
    expect(stored.rows[0]!.secret_hash).toHaveLength(32);
    expect(stored.rows[0]!.secret_hash.toString('utf8')).not.toContain(key.slice(17));

    const listed = await h.run(['keys', 'list', '--json']);
    const keys = JSON.parse(listed.stdout) as Array<{ id: string; project: string; admin: boolean }>;
    expect(keys.find((k) => k.id === id)).toMatchObject({ project: 'project-c', admin: false });
    expect(listed.stdout).not.toContain(key);

    const revoked = await h.run(['keys', 'revoke', id]);
    expect(revoked.stdout).toContain(`revoked ${id}`);
    const refused = await c.json<{ code: string }>('GET', '/api/v1/models');
    expect(refused.status).toBe(401);
    expect(refused.body.code).toBe('revoked_key');
    expect(JSON.parse((await h.run(['keys', 'list', '--json'])).stdout).map((k: { id: string }) => k.id)).not.toContain(id);
  });

  it('refuses a project name that is not a slug', async () => {
    await expect(h.run(['keys', 'create', '--project', '../etc'])).rejects.toThrow(/project must be lowercase/);
  });
});
