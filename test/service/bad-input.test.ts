// Bad input gets a clear 4xx JSON error (or a failed job with a readable message for content
// only the converter can judge); the service keeps serving and earlier models stay intact.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, startHarness } from './harness';

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let key: string;
let earlier: { id: string; sha256: string };

const sha256 = (b: ArrayBuffer): string => createHash('sha256').update(Buffer.from(b)).digest('hex');

async function glbOf(id: string): Promise<string> {
  const res = await client.request('GET', `/api/v1/models/${id}/files/model.glb`);
  expect(res.status).toBe(200);
  return sha256(await res.arrayBuffer());
}

/** A raw multipart body, for requests FormData cannot express. */
function multipart(filename: string, content: Buffer | string, options: { boundary?: string; field?: string; end?: boolean } = {}): { body: Buffer; type: string } {
  const boundary = options.boundary ?? 'cadfleetBoundary7MA4YWxk';
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="${options.field ?? 'file'}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const tail = options.end === false ? '' : `\r\n--${boundary}--\r\n`;
  return { body: Buffer.concat([Buffer.from(head), Buffer.from(content), Buffer.from(tail)]), type: `multipart/form-data; boundary=${boundary}` };
}

function postFile(filename: string, content: Buffer | string, options: Parameters<typeof multipart>[2] = {}) {
  const { body, type } = multipart(filename, content, options);
  return post(body, type);
}

async function post(body: Buffer, type: string, useKey: string | null = key): Promise<{ status: number; body: { code: string; message: string; error: string; statusCode: number } }> {
  return client.json('POST', '/api/v1/models', { body, headers: { 'content-type': type }, key: useKey });
}

beforeAll(async () => {
  h = await startHarness('bad-input', { env: { CADFLEET_MAX_UPLOAD_MB: '1', CADFLEET_MAX_PRESIGNED_UPLOAD_MB: '2' } });
  api = await h.start('api');
  await h.start('worker');
  key = await h.createKey('acme');
  client = apiClient(api.url, key);
  const up = await client.upload(SAMPLES.cube);
  const ready = await client.waitForState(String(up.body.id), ['ready', 'failed']);
  expect(ready.state).toBe('ready');
  earlier = { id: String(up.body.id), sha256: await glbOf(String(up.body.id)) };
});

afterAll(async () => {
  await h?.stop();
});

const cube = fs.readFileSync(SAMPLES.cube);

describe('bad input at the api', () => {
  it.each([
    ['no key', async () => client.json('GET', '/api/v1/models', { key: null }), 401, 'missing_key'],
    ['a key that does not exist', async () => client.json('GET', '/api/v1/models', { key: `cfk_AAAAAAAAAAAA_${'A'.repeat(43)}` }), 401, 'invalid_key'],
    ['a malformed key', async () => client.json('GET', '/api/v1/models', { key: 'hunter2' }), 401, 'invalid_key'],
    ['an unsupported type', async () => postFile('notes.txt', 'hello'), 415, 'unsupported_type'],
    ['a file without extension', async () => postFile('model', cube), 415, 'unsupported_type'],
    ['a file over the size limit', async () => postFile('big.stl', Buffer.alloc(1024 * 1024 + 10, 1)), 413, 'file_too_large'],
    ['an empty file', async () => postFile('empty.stl', ''), 400, 'empty_file'],
    ['a multipart body cut short', async () => postFile('cube.stp', cube, { end: false }), 400, 'malformed_multipart'],
    ['a multipart type without boundary', async () => post(cube, 'multipart/form-data'), 400, 'malformed_multipart'],
    ['a body that is not multipart', async () => post(Buffer.from('{"file":1}'), 'application/json'), 415, 'not_multipart'],
    ['the file in another field', async () => postFile('cube.stp', cube, { field: 'upload' }), 400, 'no_file'],
    ['a path-traversal name', async () => postFile('../../../etc/cron.d/x.stp', cube), 400, 'invalid_file_name'],
    ['a Windows path name', async () => postFile('..\\..\\evil.stp', cube), 400, 'invalid_file_name'],
    ['an unknown quality', async () => client.json('POST', '/api/v1/models?quality=ultra', { body: multipart('cube.stp', cube).body, headers: { 'content-type': multipart('cube.stp', cube).type } }), 400, 'invalid_quality'],
    ['a model id that is not a UUID', async () => client.json('GET', '/api/v1/models/..%2F..%2Fetc'), 404, 'model_not_found'],
    ['a presigned upload over the limit', async () => client.json('POST', '/api/v1/uploads', { body: JSON.stringify({ name: 'a.stp', size: 3 * 1024 * 1024 }), headers: { 'content-type': 'application/json' } }), 413, 'file_too_large'],
    ['a presigned upload of nothing', async () => client.json('POST', '/api/v1/uploads', { body: JSON.stringify({ name: 'a.stp', size: 0 }), headers: { 'content-type': 'application/json' } }), 400, 'empty_file'],
    ['a presigned upload without a body', async () => client.json('POST', '/api/v1/uploads', { body: '{"name": 5}', headers: { 'content-type': 'application/json' } }), 400, 'invalid_body'],
    ['malformed JSON', async () => client.json('POST', '/api/v1/uploads', { body: '{"name": ', headers: { 'content-type': 'application/json' } }), 400, 'bad_request'],
  ] as const)('%s', async (_name, send, status, code) => {
    const res = (await send()) as { status: number; body: Record<string, unknown> };
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(res.body).toMatchObject({ statusCode: status, code, error: expect.any(String), message: expect.any(String) });
    expect(String(res.body.message).length).toBeGreaterThan(10);
  });

  it('refuses a revoked key', async () => {
    const revoked = await h.createKey('acme');
    await h.run(['keys', 'revoke', revoked.slice(4, 16)]);
    const res = await client.json('GET', '/api/v1/models', { key: revoked });
    expect(res).toMatchObject({ status: 401, body: { code: 'revoked_key' } });
  });

  it('refuses to complete a presigned upload whose file does not match', async () => {
    const created = await client.json<{ id: string; uploadUrl: string; completeUrl: string }>('POST', '/api/v1/uploads', {
      body: JSON.stringify({ name: 'cube.stp', size: cube.length + 5 }),
      headers: { 'content-type': 'application/json' },
    });
    expect((await client.json('POST', created.body.completeUrl)).body).toMatchObject({ code: 'upload_missing' });
    // S3 itself refuses a body whose length differs from the signed one; s3rver does not, so we check on completion too.
    await fetch(created.body.uploadUrl, { method: 'PUT', body: cube }).catch(() => undefined);
    const done = await client.json<{ code: string }>('POST', created.body.completeUrl);
    expect([400, 409]).toContain(done.status);
  });

  it('fails a job with corrupt CAD content with a readable message', async () => {
    const up = await client.upload(SAMPLES.stlMalformed);
    expect(up.status).toBe(201);
    const failed = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(failed).toMatchObject({ state: 'failed', errorCode: 'corrupt' });
    expect(String(failed.error)).toMatch(/not a valid STL file/);

    // Text that claims to be STEP.
    const fake = path.join(h.dir, 'fake.step');
    fs.writeFileSync(fake, 'ISO-10303-21;\nHEADER;\nthis is not a STEP file\n');
    const up2 = await client.upload(fake);
    const failed2 = await client.waitForState(String(up2.body.id), ['ready', 'failed']);
    expect(failed2.state).toBe('failed');
    expect(String(failed2.error).length).toBeGreaterThan(10);
  });

  it('keeps serving, and the earlier model is untouched', async () => {
    expect((await client.json('GET', '/healthz', { key: null })).status).toBe(200);
    expect((await client.json('GET', `/api/v1/models/${earlier.id}`)).body).toMatchObject({ state: 'ready' });
    expect(await glbOf(earlier.id)).toBe(earlier.sha256);
    const next = await client.upload(SAMPLES.stlBox);
    expect((await client.waitForState(String(next.body.id), ['ready', 'failed'])).state).toBe('ready');
    // Nothing half-made was left behind by the refused uploads.
    const { rows } = await h.db.query<{ n: number }>('SELECT count(*)::int AS n FROM models');
    expect(rows[0]!.n).toBe(4); // the first model, two corrupt ones, the box
  });
});
