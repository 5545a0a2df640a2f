// The whole path through real processes: api and worker (child processes), PostgreSQL and Redis
// over TLS (verify-full, rediss://), S3 through s3rver. Upload -> queued -> converting -> ready
// -> a GLB that the Khronos validator accepts.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../scripts/local-services';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, eventually, startHarness } from './harness';

const validator = createRequire(import.meta.url)('gltf-validator') as {
  validateBytes(data: Uint8Array): Promise<{ issues: { numErrors: number; messages: Array<{ code: string; message: string; severity: number }> } }>;
};

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let adminKey: string;
let projectKey: string;

beforeAll(async () => {
  h = await startHarness('pipeline', { tls: true });
  api = await h.start('api', { nodeId: 'api-1' });
  adminKey = await h.createKey('ops', true);
  projectKey = await h.createKey('acme');
  client = apiClient(api.url, projectKey);
});

afterAll(async () => {
  await h?.stop();
});

describe('the conversion pipeline', () => {
  it('talks to PostgreSQL and Redis over verified TLS', () => {
    expect(h.env.CADFLEET_DATABASE_URL).toContain('sslmode=verify-full');
    expect(h.env.CADFLEET_REDIS_URL).toMatch(/^rediss:\/\//);
  });

  let modelId = '';

  it('takes an upload, queues it, converts it on a worker and serves a valid GLB', async () => {
    const upload = await client.upload(SAMPLES.assembly);
    expect(upload.status).toBe(201);
    expect(upload.body).toMatchObject({ name: 'as1-oc-214.stp', state: 'queued', progress: 0 });
    modelId = String(upload.body.id);

    // No worker yet: the job waits.
    await new Promise((r) => setTimeout(r, 500));
    expect((await client.json('GET', `/api/v1/models/${modelId}`)).body.state).toBe('queued');

    const seen: string[] = ['queued'];
    const metricsPort = await freePort();
    const worker = await h.start('worker', { nodeId: 'worker-1', env: { CADFLEET_METRICS_PORT: String(metricsPort), CADFLEET_HTTP_HOST: '127.0.0.1' } });
    const ready = await client.waitForState(modelId, ['ready', 'failed'], {
      onState: (state) => {
        if (seen.at(-1) !== state) seen.push(state);
      },
    });
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
    expect(seen).toEqual(['queued', 'converting', 'ready']);
    expect(ready).toMatchObject({ progress: 100, workerHost: os.hostname() });
    expect(ready.stats).toMatchObject({ parts: expect.any(Number), triangles: expect.any(Number), seconds: expect.any(Number) });
    expect((ready.stats as { triangles: number }).triangles).toBeGreaterThan(1000);

    const glb = await client.request('GET', `/api/v1/models/${modelId}/files/model.glb`);
    expect(glb.status).toBe(200);
    expect(glb.headers.get('content-type')).toBe('model/gltf-binary');
    const bytes = new Uint8Array(await glb.arrayBuffer());
    expect(Buffer.from(bytes.subarray(0, 4)).toString('latin1')).toBe('glTF');
    const report = await validator.validateBytes(bytes);
    expect(report.issues.numErrors, JSON.stringify(report.issues.messages.filter((m) => m.severity === 0))).toBe(0);

    const manifest = await client.json<{ parts: unknown[] }>('GET', `/api/v1/models/${modelId}/files/manifest.json`);
    expect(manifest.status).toBe(200);
    expect(manifest.body.parts.length).toBeGreaterThan(1);

    // PostgreSQL keeps who converted it, once.
    const attempts = await h.db.query('SELECT worker_node, worker_host, outcome FROM conversion_attempts WHERE model_id = $1', [modelId]);
    expect(attempts.rows).toEqual([{ worker_node: 'worker-1', worker_host: os.hostname(), outcome: 'ready' }]);
    expect(worker.logLines((l) => l.msg === 'conversion ready').length).toBe(1);

    // The worker's own metrics, on its private port. It counts the conversion once it has
    // cleaned up after recording the outcome (its `finally`): a starved worker may still be at it.
    const workerMetrics = async (): Promise<string> => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    await expect.poll(workerMetrics, { timeout: 10_000 }).toMatch(/cadfleet_conversions_total\{outcome="ready"[^}]*\} 1/);
  });

  it('lists the project models and refuses files the model does not have', async () => {
    const list = await client.json<{ models: Array<{ id: string }> }>('GET', '/api/v1/models');
    expect(list.body.models.map((m) => m.id)).toContain(modelId);
    expect((await client.json('GET', `/api/v1/models/${modelId}/files/result.json`)).status).toBe(404);
    expect((await client.json('GET', `/api/v1/models/${modelId}/files/..%2F..%2Fetc%2Fpasswd`)).status).toBe(404);
  });

  it('converts a file uploaded straight to S3 through a presigned URL', async () => {
    const size = fs.statSync(SAMPLES.cube).size;
    const created = await client.json<{ id: string; uploadUrl: string; method: string; completeUrl: string }>('POST', '/api/v1/uploads', {
      body: JSON.stringify({ name: 'cube.stp', size }),
      headers: { 'content-type': 'application/json' },
    });
    expect(created.status).toBe(201);
    expect(created.body.uploadUrl).toContain(h.stack.s3.endpoint);
    const early = await client.json('POST', created.body.completeUrl);
    expect(early.status).toBe(409);
    const put = await fetch(created.body.uploadUrl, { method: 'PUT', body: fs.readFileSync(SAMPLES.cube) });
    expect(put.status).toBe(200);
    const completed = await client.json<{ id: string; state: string }>('POST', created.body.completeUrl);
    expect(completed.status).toBe(201);
    expect(completed.body).toMatchObject({ id: created.body.id, state: 'queued' });
    // Completing twice answers with the same model instead of a second conversion.
    const again = await client.json<{ id: string }>('POST', created.body.completeUrl);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(created.body.id);
    const ready = await client.waitForState(created.body.id, ['ready', 'failed']);
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    const healthz = await client.json('GET', '/healthz', { key: null });
    expect(healthz).toMatchObject({ status: 200, body: { status: 'ok', role: 'api' } });
    const readyz = await client.json<{ dependencies: Array<{ name: string; ok: boolean }> }>('GET', '/readyz', { key: null });
    expect(readyz.status).toBe(200);
    expect(readyz.body.dependencies.map((d) => [d.name, d.ok])).toEqual([
      ['postgres', true],
      ['redis', true],
      ['s3', true],
    ]);
    // A job is marked completed in the queue just after its model reads ready (outputs stored,
    // row updated, then the acknowledgement): wait for the gauge rather than race it.
    let metrics = '';
    for (let i = 0; i < 50; i++) {
      metrics = await (await client.request('GET', '/metrics', { key: null })).text();
      if (/cadfleet_queue_jobs\{state="completed"[^}]*\} 2/.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(metrics).toContain('cadfleet_http_requests_total');
    expect(metrics).toMatch(/cadfleet_queue_jobs\{state="completed"[^}]*\} 2/);
    expect(metrics).toMatch(/cadfleet_dependency_up\{dependency="redis"[^}]*\} 1/);
  });

  it('shows every node, the queue and recent models on /status to admin keys only', async () => {
    const noKey = await client.request('GET', '/status', { key: null });
    expect(noKey.status).toBe(401);
    expect(noKey.headers.get('www-authenticate')).toMatch(/^Basic/);
    expect((await client.request('GET', '/status')).status).toBe(403);

    const status = await eventually(async () => {
      const res = await client.json<{
        nodes: Array<{ id: string; role: string; version: string; uptimeSeconds: number; lastHeartbeat: string; lastHeartbeatAgeSeconds: number }>;
        queue: Record<string, number>;
        models: { recent: Array<{ id: string }>; counts: Record<string, number> };
      }>('GET', '/status?format=json', { key: adminKey });
      return res.body.nodes?.length === 2 ? res : undefined;
    }, 'both nodes on /status');
    expect(status.body.nodes.map((n) => [n.id, n.role])).toEqual([
      ['api-1', 'api'],
      ['worker-1', 'worker'],
    ]);
    for (const n of status.body.nodes) {
      expect(n.version).toMatch(/^\d+\.\d+\.\d+/);
      expect(n.lastHeartbeatAgeSeconds).toBeLessThan(5);
      expect(Date.parse(n.lastHeartbeat)).toBeGreaterThan(0);
    }
    expect(status.body.queue).toMatchObject({ waiting: 0, active: 0, completed: 2 });
    expect(status.body.models.recent.map((m) => m.id)).toContain(modelId);
    expect(status.body.models.counts.ready).toBe(2);

    // A browser: HTTP Basic with the key as password, HTML back.
    const html = await fetch(`${api.url}/status`, {
      headers: { authorization: `Basic ${Buffer.from(`admin:${adminKey}`).toString('base64')}`, accept: 'text/html' },
    });
    expect(html.status).toBe(200);
    expect(html.headers.get('content-type')).toContain('text/html');
    const page = await html.text();
    expect(page).toContain('worker-1');
    expect(page).toContain('as1-oc-214.stp');
  });

  it('deletes a model with its stored files', async () => {
    const prefix = `models/acme/${modelId}/`;
    const del = await client.request('DELETE', `/api/v1/models/${modelId}`);
    expect(del.status).toBe(204);
    expect((await client.json('GET', `/api/v1/models/${modelId}`)).status).toBe(404);
    expect((await client.json('GET', `/api/v1/models/${modelId}/files/model.glb`)).status).toBe(404);
    const { createStorage } = await import('../../app/src/shared/storage');
    const { loadConfig } = await import('../../app/src/shared/config');
    const storage = createStorage(loadConfig({ ...h.env }).s3);
    try {
      expect(await storage.head(storage.modelsBucket, `${prefix}model.glb`)).toBeUndefined();
      expect(await storage.head(storage.uploadsBucket, `uploads/acme/${modelId}/input.stp`)).toBeUndefined();
    } finally {
      storage.close();
    }
  });
});
