// Dependencies going away and coming back: the api answers 503 with Retry-After while
// PostgreSQL, Redis or S3 is down and recovers without a restart. The service refuses a Redis
// that evicts keys, and a configuration that is wrong, with messages that say why.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis } from '../../scripts/local-services';
import { type ApiClient, type AppProcess, FAST_ENV, type Harness, MAIN, ROOT, SAMPLES, apiClient, eventually, startHarness } from './harness';

const execFileAsync = promisify(execFile);

let h: Harness;
let api: AppProcess;
let client: ApiClient;

beforeAll(async () => {
  h = await startHarness('resilience');
  api = await h.start('api');
  await h.start('worker');
  client = apiClient(api.url, await h.createKey('acme'));
});

afterAll(async () => {
  await h?.stop();
});

async function expectUnavailable(dependency: string): Promise<void> {
  const res = await eventually(async () => {
    const r = await client.json<{ code: string; message: string }>('GET', '/api/v1/models');
    return r.status === 503 ? r : undefined;
  }, `503 while ${dependency} is down`, 15_000);
  expect(res.headers.get('retry-after')).toBe('2');
  expect(res.body.code).toBe('dependency_unavailable');
  // Either the request failed on the dependency itself or the background check had caught it first.
  expect(res.body.message).toMatch(new RegExp(`${dependency}|unreachable`));
  const ready = await client.json<{ dependencies: Array<{ name: string; ok: boolean }> }>('GET', '/readyz', { key: null });
  expect(ready.status).toBe(503);
  expect(ready.headers.get('retry-after')).toBe('2');
  expect(ready.body.dependencies.find((d) => d.name === dependency)?.ok).toBe(false);
  // The process itself is alive.
  expect((await client.json('GET', '/healthz', { key: null })).status).toBe(200);
}

async function expectRecovered(): Promise<void> {
  await eventually(async () => (await client.json('GET', '/api/v1/models')).status === 200, 'the api to recover', 20_000);
  expect((await client.json('GET', '/readyz', { key: null })).status).toBe(200);
}

describe('dependencies down', () => {
  it.each([
    ['redis', () => h.stack.redis],
    ['s3', () => h.stack.s3],
    ['postgres', () => h.stack.postgres],
  ] as const)('answers 503 with Retry-After while %s is down, and recovers', async (name, instance) => {
    await instance().stop();
    try {
      await expectUnavailable(name);
    } finally {
      await instance().start();
    }
    await expectRecovered();
  });

  it('converts again after the outages', async () => {
    const up = await client.upload(SAMPLES.cube);
    expect(up.status).toBe(201);
    const ready = await client.waitForState(String(up.body.id), ['ready', 'failed'], { timeoutMs: 60_000 });
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
  });
});

describe('refusing to start', () => {
  it('refuses a Redis whose maxmemory-policy evicts keys', async () => {
    const redis = await startRedis({ dir: path.join(h.dir, 'redis-lru'), maxmemoryPolicy: 'allkeys-lru' });
    try {
      const worker = await h.start('worker', { env: { CADFLEET_REDIS_URL: redis.url }, waitReady: false });
      const exit = await worker.exited;
      expect(exit.code).toBe(3);
      expect(worker.logs()).toMatch(/maxmemory-policy is \\?"allkeys-lru\\?", but cadfleet needs \\?"noeviction\\?"/);
    } finally {
      await redis.stop();
    }
  });

  it('names the variable that is wrong', async () => {
    const run = execFileAsync(process.execPath, ['--import', 'tsx', MAIN, 'api'], {
      cwd: ROOT,
      env: { ...process.env, ...FAST_ENV, ...h.env, CADFLEET_HTTP_PORT: 'eighty', CADFLEET_S3_UPLOADS_BUCKET: '' },
    });
    const err = (await run.then(() => undefined, (e: unknown) => e)) as { code: number; stderr: string } | undefined;
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/CADFLEET_HTTP_PORT must be a number, got "eighty"/);
    expect(err?.stderr).toMatch(/CADFLEET_S3_UPLOADS_BUCKET is required, it is not set/);
    expect(err?.stderr).not.toContain(h.stack.postgres.password);
  });
});
