// An api told to stop keeps serving until the LB has dropped it: the LB's sync publishes what
// nginx routes (registry.ts, `lb:routing`), and a request sent on a kept-alive connection at
// the moment the api closed it would reach the client as a 502 (nginx never retries a POST).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { hostPort } from '../../app/src/lb-sync/render';
import { type LbRouting, registryKeys } from '../../app/src/registry';
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
