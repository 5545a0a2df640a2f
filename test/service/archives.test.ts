// Real CAD data in, through the api and a worker with PostgreSQL, Redis and s3rver: multi-file
// models in one .zip (Debian's assimp-testmodels), hostile archives, and reuse of a conversion for
// the same bytes.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { S3Client, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeZip, type ZipEntrySpec } from '../helpers/zip';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, startHarness } from './harness';

const validator = createRequire(import.meta.url)('gltf-validator') as {
  validateBytes(data: Uint8Array): Promise<{ issues: { numErrors: number; messages: Array<{ code: string; message: string; severity: number }> } }>;
};

const MODELS = '/usr/share/assimp/models';
const need = (file: string): string => {
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: install Debian's assimp-testmodels (bash scripts/setup.sh does)`);
  return file;
};
const fromDisk = (dir: string, names: string[], prefix = ''): ZipEntrySpec[] => names.map((n) => ({ name: `${prefix}${n}`, data: fs.readFileSync(need(path.join(dir, n))) }));

const SPIDER = fromDisk(`${MODELS}/OBJ`, ['spider.obj', 'spider.mtl', 'SpiderTex.jpg', 'drkwood2.jpg', 'engineflare1.jpg', 'wal67ar_small.jpg', 'wal69ar_small.jpg'], 'spider/');
const BOX_GLTF = fromDisk(`${MODELS}/glTF2/BoxTextured-glTF`, ['BoxTextured.gltf', 'BoxTextured0.bin', 'CesiumLogoFlat.png']);

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let other: ApiClient;
let workDir = '';
let worker: AppProcess;

beforeAll(async () => {
  h = await startHarness('archives', { env: { CADFLEET_ARCHIVE_MAX_ENTRIES: '200', CADFLEET_ARCHIVE_MAX_EXPANDED_MB: '32' } });
  api = await h.start('api', { nodeId: 'api-1' });
  worker = await h.start('worker', { nodeId: 'worker-1' });
  workDir = h.env.CADFLEET_WORK_DIR!;
  client = apiClient(api.url, await h.createKey('acme'));
  other = apiClient(api.url, await h.createKey('globex'));
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

async function uploadBytes(c: ApiClient, name: string, bytes: Buffer, fields: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([bytes]), name);
  return c.json('POST', '/api/v1/models', { body: form });
}

async function glbJson(c: ApiClient, id: string): Promise<{ bytes: Uint8Array; json: { images?: Array<{ bufferView?: number; uri?: string; mimeType?: string }>; textures?: unknown[] } }> {
  const res = await c.request('GET', `/api/v1/models/${id}/files/model.glb`);
  expect(res.status).toBe(200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const json = JSON.parse(Buffer.from(bytes.subarray(20, 20 + view.getUint32(12, true))).toString('utf8'));
  return { bytes, json };
}

async function expectValid(bytes: Uint8Array): Promise<void> {
  const report = await validator.validateBytes(bytes);
  expect(report.issues.numErrors, JSON.stringify(report.issues.messages.filter((m) => m.severity === 0))).toBe(0);
}

const attemptsOf = async (id: string): Promise<string[]> =>
  (await h.db.query<{ outcome: string }>('SELECT outcome FROM conversion_attempts WHERE model_id = $1 ORDER BY id', [id])).rows.map((r) => r.outcome);

describe('archive uploads', () => {
  it('converts an OBJ with its MTL and textures from a zip into a GLB that carries the textures', async () => {
    const up = await uploadBytes(client, 'spider.zip', makeZip(SPIDER));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body).toMatchObject({ name: 'spider.zip', format: 'obj', archive: 'zip', root: 'spider/spider.obj', state: 'queued' });
    const ready = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
    const { bytes, json } = await glbJson(client, String(up.body.id));
    await expectValid(bytes);
    // Textures embedded (a bufferView each), not paths to files the viewer cannot reach.
    expect(json.images?.length).toBeGreaterThanOrEqual(1);
    for (const image of json.images ?? []) {
      expect(image.uri).toBeUndefined();
      expect(image.bufferView).toEqual(expect.any(Number));
      expect(image.mimeType).toBe('image/jpeg');
    }
  });

  it('the same OBJ uploaded alone converts without its textures (nothing outside the upload is read)', async () => {
    const up = await uploadBytes(client, 'spider.obj', fs.readFileSync(`${MODELS}/OBJ/spider.obj`));
    const ready = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(ready.state).toBe('ready');
    const { json } = await glbJson(client, String(up.body.id));
    expect(json.images ?? []).toEqual([]);
  });

  it('converts a multi-file glTF (.gltf + .bin + texture) from a zip', async () => {
    const up = await uploadBytes(client, 'box.zip', makeZip(BOX_GLTF));
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect(up.body).toMatchObject({ format: 'gltf', root: 'BoxTextured.gltf' });
    const ready = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
    expect(ready.stats).toMatchObject({ triangles: 12 });
    const { bytes, json } = await glbJson(client, String(up.body.id));
    await expectValid(bytes);
    expect(json.images).toEqual([expect.objectContaining({ mimeType: 'image/png', bufferView: expect.any(Number) })]);
  });

  it('asks which file to open when the archive holds two models, naming both, and takes the root field', async () => {
    const both = makeZip([...SPIDER, ...BOX_GLTF]);
    const ambiguous = await uploadBytes(client, 'both.zip', both);
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body).toMatchObject({ code: 'archive_root_ambiguous', candidates: ['spider/spider.obj', 'BoxTextured.gltf'] });
    expect(String(ambiguous.body.message)).toContain('spider/spider.obj');
    expect(String(ambiguous.body.message)).toContain('BoxTextured.gltf');
    // Nothing of the refused upload stays in the bucket or the table.
    expect((await h.db.query("SELECT count(*)::int AS n FROM models WHERE name = 'both.zip'")).rows[0].n).toBe(0);

    const chosen = await uploadBytes(client, 'both.zip', both, { root: 'BoxTextured.gltf' });
    expect(chosen.status, JSON.stringify(chosen.body)).toBe(201);
    expect(chosen.body).toMatchObject({ root: 'BoxTextured.gltf', format: 'gltf' });
    expect((await client.waitForState(String(chosen.body.id), ['ready', 'failed'])).state).toBe('ready');

    const missing = await uploadBytes(client, 'both.zip', both, { root: 'nope.obj' });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ code: 'archive_root_not_found' });
    const single = await uploadBytes(client, 'x.stl', fs.readFileSync(SAMPLES.stlBox), { root: 'x.stl' });
    expect(single.body).toMatchObject({ code: 'root_without_archive' });
  });

  it('takes an archive through a presigned upload, with the root named at completion after a 400', async () => {
    const bytes = makeZip([...SPIDER, ...BOX_GLTF]);
    const created = await client.json('POST', '/api/v1/uploads', { body: JSON.stringify({ name: 'both.zip', size: bytes.length }), headers: { 'content-type': 'application/json' } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const put = await fetch(String(created.body.uploadUrl), { method: 'PUT', body: bytes, headers: { 'content-length': String(bytes.length) } });
    expect(put.status).toBe(200);
    const complete = (body?: unknown) =>
      client.json('POST', String(created.body.completeUrl), body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {});
    const ambiguous = await complete();
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body).toMatchObject({ code: 'archive_root_ambiguous', candidates: ['spider/spider.obj', 'BoxTextured.gltf'] });
    const done = await complete({ root: 'spider/spider.obj' });
    expect(done.status, JSON.stringify(done.body)).toBe(201);
    expect(done.body).toMatchObject({ archive: 'zip', root: 'spider/spider.obj', format: 'obj' });
    const ready = await client.waitForState(String(done.body.id), ['ready', 'failed']);
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
    // The worker hashed what it downloaded.
    expect(ready.sha256).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('hostile archives', () => {
  const cases: Array<[string, ZipEntrySpec[], number, string]> = [
    ['zip-slip', [{ name: '../../../evil.obj', data: 'v 0 0 0\n' }], 400, 'archive_invalid'],
    ['an absolute path', [{ name: '/etc/evil.obj', data: 'v 0 0 0\n' }], 400, 'archive_invalid'],
    ['a symlink', [{ name: 'part.obj', data: '/etc/passwd', symlink: true }], 400, 'archive_invalid'],
    ['an encrypted entry', [{ name: 'part.obj', data: 'v 0 0 0\n', encrypted: true }], 400, 'archive_invalid'],
    ['a nested archive', [{ name: 'part.obj', data: 'v 0 0 0\n' }, { name: 'more.zip', data: 'PK' }], 400, 'archive_invalid'],
    ['a duplicate name', [{ name: 'part.obj', data: 'a' }, { name: 'part.obj', data: 'b' }], 400, 'archive_invalid'],
    ['too many entries', Array.from({ length: 201 }, (_, i) => ({ name: `p${i}.txt`, data: 'x' })), 413, 'archive_too_large'],
    ['an expanded size over the limit', [{ name: 'bomb.stl', zeros: 256 * 1024 * 1024 }], 413, 'archive_too_large'],
    ['no model file', [{ name: 'notes.txt', data: 'hello' }], 400, 'archive_no_model'],
    ['bytes that are no zip', [], 400, 'archive_invalid'],
  ];
  for (const [what, entries, status, code] of cases) {
    it(`refuses ${what} at upload with ${status} ${code}, and stores nothing`, async () => {
      const bytes = entries.length ? makeZip(entries) : Buffer.from('ISO-10303-21;\nnot a zip\n'.repeat(10));
      const before = (await h.db.query('SELECT count(*)::int AS n FROM models')).rows[0].n;
      const up = await uploadBytes(client, 'hostile.zip', bytes);
      expect(up.status, JSON.stringify(up.body)).toBe(status);
      expect(up.body).toMatchObject({ statusCode: status, code });
      expect(String(up.body.message).length).toBeGreaterThan(20);
      expect((await h.db.query('SELECT count(*)::int AS n FROM models')).rows[0].n).toBe(before);
    });
  }

  it('fails the job of a bomb whose header lies (the api sees only the directory), writing under the limit and nothing outside the job folder', async () => {
    const bytes = makeZip([{ name: 'bomb.stl', zeros: 256 * 1024 * 1024, declaredSize: 1024 }]);
    const up = await uploadBytes(client, 'liar.zip', bytes);
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    const failed = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(failed).toMatchObject({ state: 'failed', errorCode: 'archive-invalid' });
    expect(String(failed.error)).toMatch(/more bytes than its header declares/);
    // The job's folder goes and nothing is left beside it. The worker removes it after it has
    // recorded the outcome (its `finally`): a worker starved of CPU may still be at it.
    await expect.poll(() => (fs.existsSync(workDir) ? fs.readdirSync(workDir) : []), { timeout: 10_000 }).toEqual([]);
    expect(await attemptsOf(String(up.body.id))).toEqual(['failed']);
  });
});

describe('reuse by content', () => {
  let firstId = '';
  let firstSeconds = 0;

  it('makes a second upload of the same bytes ready at once, with no job, pointing at the first', async () => {
    const bytes = fs.readFileSync(SAMPLES.assembly);
    const first = await uploadBytes(client, 'as1-oc-214.stp', bytes);
    firstId = String(first.body.id);
    const t0 = performance.now();
    const ready = await client.waitForState(firstId, ['ready', 'failed']);
    firstSeconds = (performance.now() - t0) / 1000;
    expect(ready.state).toBe('ready');
    expect(ready.sha256).toMatch(/^[0-9a-f]{64}$/);

    const second = await uploadBytes(client, 'copy-of-as1.stp', bytes);
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ state: 'ready', progress: 100, reusedFrom: firstId, sha256: ready.sha256, stats: ready.stats });
    const secondId = String(second.body.id);
    // No conversion ran for it: no attempt, no job in the queue.
    expect(await attemptsOf(secondId)).toEqual([]);
    expect(worker.logLines((l) => l.model === secondId).length).toBe(0);
    const glb = await client.request('GET', `/api/v1/models/${secondId}/files/model.glb`);
    expect(glb.status).toBe(200);
    expect(firstSeconds).toBeGreaterThan(0);
  });

  it('converts again with reuse=false, and never reuses across projects or other options', async () => {
    const bytes = fs.readFileSync(SAMPLES.assembly);
    const fresh = await uploadBytes(client, 'as1.stp', bytes, { reuse: 'false' });
    expect(fresh.body).toMatchObject({ state: 'queued' });
    expect(fresh.body.reusedFrom).toBeUndefined();
    expect((await client.waitForState(String(fresh.body.id), ['ready', 'failed'])).state).toBe('ready');
    expect(await attemptsOf(String(fresh.body.id))).toEqual(['ready']);

    const elsewhere = await uploadBytes(other, 'as1.stp', bytes);
    expect(elsewhere.body).toMatchObject({ state: 'queued' });
    expect((await other.waitForState(String(elsewhere.body.id), ['ready', 'failed'])).reusedFrom).toBeUndefined();

    const coarse = await uploadBytes(client, 'as1.stp', bytes, { quality: 'coarse' });
    expect(coarse.body).toMatchObject({ state: 'queued', quality: 'coarse' });
    await client.waitForState(String(coarse.body.id), ['ready', 'failed']);

    const bad = await uploadBytes(client, 'as1.stp', bytes, { reuse: 'maybe' });
    expect(bad.body).toMatchObject({ statusCode: 400, code: 'invalid_reuse' });
  });

  it('reuses an archive only for the same root', async () => {
    const bytes = makeZip([...SPIDER, ...BOX_GLTF]);
    const a = await uploadBytes(client, 'both.zip', bytes, { root: 'BoxTextured.gltf' });
    expect(a.body.reusedFrom, 'an earlier test converted this archive with this root').toEqual(expect.any(String));
    const b = await uploadBytes(client, 'both.zip', bytes, { root: 'spider/spider.obj' });
    expect(b.body).toMatchObject({ state: 'ready', reusedFrom: expect.any(String) });
    expect(b.body.reusedFrom).not.toBe(a.body.reusedFrom);
  });

  it('reuses on the worker for a presigned upload (the api never sees those bytes)', async () => {
    const bytes = fs.readFileSync(SAMPLES.assembly);
    const created = await client.json('POST', '/api/v1/uploads', { body: JSON.stringify({ name: 'as1.stp', size: bytes.length }), headers: { 'content-type': 'application/json' } });
    await fetch(String(created.body.uploadUrl), { method: 'PUT', body: bytes, headers: { 'content-length': String(bytes.length) } });
    const done = await client.json('POST', String(created.body.completeUrl));
    expect(done.body).toMatchObject({ state: 'queued' });
    const ready = await client.waitForState(String(done.body.id), ['ready', 'failed']);
    expect(ready).toMatchObject({ state: 'ready', reusedFrom: firstId });
    expect(await attemptsOf(String(done.body.id))).toEqual(['reused']);
  });

  it('keeps shared outputs while any model uses them, and removes them with the last', async () => {
    const bytes = fs.readFileSync(SAMPLES.cube);
    const first = await uploadBytes(client, 'cube.stp', bytes);
    const firstReady = await client.waitForState(String(first.body.id), ['ready', 'failed']);
    expect(firstReady.state).toBe('ready');
    const second = await uploadBytes(client, 'cube-again.stp', bytes);
    expect(second.body).toMatchObject({ state: 'ready', reusedFrom: first.body.id });
    const prefix = `models/acme/${String(first.body.id)}/`;
    const s3 = new S3Client({ region: 'us-east-1', endpoint: h.env.CADFLEET_S3_ENDPOINT, forcePathStyle: true });
    const stored = async () => (await s3.send(new ListObjectsV2Command({ Bucket: h.env.CADFLEET_S3_MODELS_BUCKET, Prefix: prefix }))).KeyCount ?? 0;
    expect(await stored()).toBe(3);

    expect((await client.request('DELETE', `/api/v1/models/${String(first.body.id)}`)).status).toBe(204);
    expect(await stored()).toBe(3);
    const glb = await client.request('GET', `/api/v1/models/${String(second.body.id)}/files/model.glb`);
    expect(glb.status).toBe(200);
    expect((await glb.arrayBuffer()).byteLength).toBeGreaterThan(100);

    expect((await client.request('DELETE', `/api/v1/models/${String(second.body.id)}`)).status).toBe(204);
    expect(await stored()).toBe(0);
    s3.destroy();
  });
});
