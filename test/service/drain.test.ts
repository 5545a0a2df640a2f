// An api told to stop keeps serving until the LB has dropped it: the LB's sync publishes what
// nginx routes (registry.ts, `lb:routing`), and a request sent on a kept-alive connection at
// the moment the api closed it would reach the client as a 502 (nginx never retries a POST).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostPort } from '../../app/src/shared/registry';
import { type LbRouting, registryKeys } from '../../app/src/shared/registry';
import { type Harness, SAMPLES, apiClient, eventually, sleep, startHarness } from './harness';

let h: Harness;
let redis: Redis;

beforeAll(async () => {
  h = await startHarness('drain');
  redis = new Redis(h.env.CADFLEET_REDIS_URL!, { lazyConnect: false });
});

afterAll(async () => {
  redis?.disconnect();
  await h?.stop();
});

it('keeps serving after SIGTERM until the LB no longer routes to it, then exits', async () => {
  const api = await h.start('api', { env: { CADFLEET_LB_DEREGISTER_TIMEOUT_MS: '30000' } });
  const client = apiClient(api.url, await h.createKey('drain'));
  const keys = registryKeys(h.env.CADFLEET_REDIS_PREFIX!);
  const ids = await redis.zrange(keys.nodes, '0', '-1');
  const self = (await Promise.all(ids.map((id) => redis.hgetall(keys.node(id))))).find((n) => n.role === 'api')!;
  const address = hostPort(self.address)!;
  const publish = (api: string[]) => redis.set(keys.lbRouting, JSON.stringify({ api, streamers: {}, at: Date.now() } satisfies LbRouting), 'PX', 60_000);
  await publish([address, '10.0.0.9:8080']);

  process.kill(api.pid, 'SIGTERM');
  await eventually(async () => (await redis.hget(keys.node(self.id!), 'state')) === 'draining', 'the api to say it drains', 5000);
  // The LB still routes here: reads and uploads on the same kept-alive connections succeed.
  for (let i = 0; i < 5; i++) {
    expect((await client.json('GET', '/api/v1/models')).status).toBe(200);
    expect((await client.upload(SAMPLES.cube)).status).toBe(201);
    await sleep(200);
  }
  expect(api.alive()).toBe(true);

  // The LB reloaded without it: now it closes.
  const dropped = Date.now();
  await publish(['10.0.0.9:8080']);
  expect(await api.exited).toMatchObject({ code: 0 });
  expect(Date.now() - dropped).toBeLessThan(10_000);
}, 60_000);

it('closes at once when no LB publishes its routing (single machine)', async () => {
  await redis.del(registryKeys(h.env.CADFLEET_REDIS_PREFIX!).lbRouting);
  const api = await h.start('api', { env: { CADFLEET_LB_DEREGISTER_TIMEOUT_MS: '30000' } });
  const t0 = Date.now();
  process.kill(api.pid, 'SIGTERM');
  expect(await api.exited).toMatchObject({ code: 0 });
  expect(Date.now() - t0).toBeLessThan(10_000);
}, 60_000);

/** A raw HTTP/1.1 connection, so a request can be sent in pieces: part before the api closes, the rest after. */
function rawConnection(url: string): Promise<{ send(bytes: string | Buffer): void; answer: Promise<{ status: number; headers: Record<string, string>; body: string }> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => {
      const chunks: Buffer[] = [];
      socket.on('data', (d: Buffer) => chunks.push(d));
      const answer = new Promise<{ status: number; headers: Record<string, string>; body: string }>((done, fail) => {
        socket.on('error', fail);
        // The api closes each connection after its answer here (it is closing).
        socket.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const [head = '', body = ''] = text.split('\r\n\r\n');
          const [statusLine = '', ...lines] = head.split('\r\n');
          const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
          done({ status: Number(statusLine.split(' ')[1]), headers, body });
        });
      });
      resolve({ send: (bytes) => void socket.write(bytes), answer });
    });
    socket.once('error', reject);
  });
}

it('answers a request that reaches it while it closes with 503 shutting_down in the error shape, and completes the upload in flight', async () => {
  await redis.del(registryKeys(h.env.CADFLEET_REDIS_PREFIX!).lbRouting);
  const api = await h.start('api');
  const key = await h.createKey('closing');
  const file = fs.readFileSync(SAMPLES.cube);
  const form = Buffer.concat([
    Buffer.from(`--b\r\ncontent-disposition: form-data; name="file"; filename="${path.basename(SAMPLES.cube)}"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    file,
    Buffer.from('\r\n--b--\r\n'),
  ]);
  // In flight when the close begins: an upload with half its body sent, and a read with half its
  // header. The api's close waits for both connections (neither is idle).
  const upload = await rawConnection(api.url);
  upload.send(`POST /api/v1/models HTTP/1.1\r\nhost: api\r\nauthorization: Bearer ${key}\r\ncontent-type: multipart/form-data; boundary=b\r\ncontent-length: ${form.length}\r\n\r\n`);
  upload.send(form.subarray(0, form.length >> 1));
  const read = await rawConnection(api.url);
  read.send('GET /api/v1/models HTTP/1.1\r\nhost: api\r\n');
  await sleep(300);

  process.kill(api.pid, 'SIGTERM');
  // No LB publishes routing: it closes at once, and its listening socket is gone.
  await eventually(() => new Promise<boolean>((resolve) => {
    const probe = net.connect(Number(new URL(api.url).port), new URL(api.url).hostname);
    probe.once('connect', () => (probe.destroy(), resolve(false)));
    probe.once('error', () => resolve(true));
  }), 'the api to stop listening', 10_000);

  read.send(`authorization: Bearer ${key}\r\n\r\n`);
  const refused = await read.answer;
  expect(refused.status, refused.body).toBe(503);
  expect(refused.headers['content-type']).toMatch(/^application\/json/);
  expect(refused.headers['retry-after']).toBe('1');
  expect(JSON.parse(refused.body)).toEqual({ statusCode: 503, error: 'Service Unavailable', code: 'shutting_down', message: expect.stringContaining('shutting down') });

  upload.send(form.subarray(form.length >> 1));
  const accepted = await upload.answer;
  expect(accepted.status, accepted.body).toBe(201);
  expect(JSON.parse(accepted.body)).toMatchObject({ state: 'queued' });
  expect(await api.exited).toMatchObject({ code: 0 });
}, 60_000);
