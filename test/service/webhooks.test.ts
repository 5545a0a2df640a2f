// Webhooks and the event stream through real processes (api, worker, PostgreSQL, Redis, s3rver)
// and a real receiver that verifies every signature, goes down for a while, and dedupes by the
// event id as the docs tell receivers to.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature } from '../../app/src/shared/webhooks/sign';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, eventually, sleep, startHarness } from './harness';

interface Received {
  path: string;
  eventId: string;
  signed: boolean;
  body: { id: string; type: string; data: { model: { id: string; state: string; progress: number }; batch?: { id: string; state: string; total: number; counts: Record<string, number> } } };
}

/** A receiver on loopback: records what arrives; answers 503 while `down`. */
function receiver(secret: () => string): Promise<{ url: string; got: Received[]; setDown(down: boolean): void; refused: () => number; close(): void }> {
  const got: Received[] = [];
  let down = false;
  let refused = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
        return;
      }
      if (down) {
        refused++;
        res.writeHead(503).end();
        return;
      }
      const raw = Buffer.concat(chunks).toString('utf8');
      got.push({ path: req.url ?? '', eventId: String(req.headers['cadfleet-event-id']), signed: verifySignature(secret(), raw, req.headers['cadfleet-signature'] as string), body: JSON.parse(raw) as Received['body'] });
      res.writeHead(204).end();
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        got,
        setDown: (d) => (down = d),
        refused: () => refused,
        close: () => server.close(),
      }),
    ),
  );
}

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let other: ApiClient;
let secret = '';
let hooks: Awaited<ReturnType<typeof receiver>>;

beforeAll(async () => {
  h = await startHarness('webhooks', {
    env: {
      CADFLEET_WEBHOOK_ALLOW_HTTP: 'true',
      CADFLEET_WEBHOOK_ALLOW_NETWORKS: '127.0.0.1/32',
      CADFLEET_WEBHOOK_BACKOFF_MS: '200',
      CADFLEET_WEBHOOK_ATTEMPTS: '30',
      CADFLEET_WEBHOOK_DISPATCH_MS: '100',
      CADFLEET_EVENTS_POLL_MS: '100',
    },
  });
  api = await h.start('api', { nodeId: 'api-1' });
  await h.start('worker', { nodeId: 'worker-1' });
  client = apiClient(api.url, await h.createKey('acme'));
  other = apiClient(api.url, await h.createKey('globex'));
  hooks = await receiver(() => secret);
}, 120_000);

afterAll(async () => {
  hooks?.close();
  await h?.stop();
});

const post = (c: ApiClient, body: unknown) => c.json('POST', '/api/v1/webhooks', { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** Event ids PostgreSQL holds for a model, in order, with their types. */
const eventsOf = async (modelId: string) =>
  (await h.db.query<{ id: string; type: string }>('SELECT id, type FROM model_events WHERE model_id = $1 ORDER BY id', [modelId])).rows.map((r) => ({ id: `evt_${r.id}`, type: r.type }));

describe('webhooks', () => {
  let hookId = '';

  it('registers an endpoint and shows its secret once', async () => {
    const created = await post(client, { url: `${hooks.url}/hook`, description: 'CI' });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ url: `${hooks.url}/hook`, events: ['model.queued', 'model.converting', 'model.ready', 'model.failed', 'model.deleted', 'batch.ended'] });
    secret = String(created.body.secret);
    expect(secret).toMatch(/^whsec_/);
    hookId = String(created.body.id);
    const listed = await client.json<{ webhooks: Array<Record<string, unknown>> }>('GET', '/api/v1/webhooks');
    expect(listed.body.webhooks.map((w) => w.id)).toEqual([hookId]);
    expect(listed.body.webhooks[0]!.secret).toBeUndefined();
    // Another project sees none of it.
    expect((await other.json<{ webhooks: unknown[] }>('GET', '/api/v1/webhooks')).body.webhooks).toEqual([]);
    expect((await other.json('GET', `/api/v1/webhooks/${hookId}/deliveries`)).status).toBe(404);
  });

  it('delivers every state change of a conversion, signed, with the event id as idempotency key', async () => {
    const up = await client.upload(SAMPLES.cube);
    const id = String(up.body.id);
    await client.waitForState(id, ['ready']);
    const expected = await eventsOf(id);
    expect(expected.map((e) => e.type)).toEqual(expect.arrayContaining(['model.queued', 'model.converting', 'model.ready']));
    await eventually(async () => expected.every((e) => hooks.got.some((g) => g.eventId === e.id)), 'every event delivered', 20_000);
    const mine = hooks.got.filter((g) => g.body.data.model.id === id);
    expect(mine.every((g) => g.signed)).toBe(true);
    expect(mine.every((g) => g.body.id === g.eventId)).toBe(true);
    expect(new Set(mine.map((g) => g.eventId)).size).toBe(expected.length);
    const ready = mine.find((g) => g.body.type === 'model.ready')!;
    expect(ready.body.data.model).toMatchObject({ id, state: 'ready', progress: 100 });
    const converting = mine.filter((g) => g.body.type === 'model.converting').map((g) => g.body.data.model.progress);
    expect(converting.length).toBeGreaterThanOrEqual(2);
  });

  it('retries while the receiver is down and loses none of a batch when it comes back', async () => {
    hooks.setDown(true);
    const ids = await Promise.all([SAMPLES.cube, SAMPLES.stlBox, SAMPLES.cube].map(async (f) => String((await client.upload(f)).body.id)));
    for (const id of ids) await client.waitForState(id, ['ready']);
    await eventually(async () => hooks.refused() >= 6, 'deliveries refused while down', 20_000);
    await sleep(1500);
    hooks.setDown(false);
    const expected = (await Promise.all(ids.map(eventsOf))).flat();
    await eventually(async () => expected.every((e) => hooks.got.some((g) => g.eventId === e.id)), 'every event delivered after the outage', 60_000);
    // At least once: each event arrived; a duplicate would carry the same id.
    const delivered = new Set(hooks.got.map((g) => g.eventId));
    expect(expected.filter((e) => !delivered.has(e.id))).toEqual([]);
    const log = await client.json<{ deliveries: Array<{ state: string; attempts: number; lastStatus?: number }> }>('GET', `/api/v1/webhooks/${hookId}/deliveries?limit=1000`);
    const retried = log.body.deliveries.filter((d) => d.attempts > 1);
    expect(retried.length).toBeGreaterThan(0);
    await eventually(async () => {
      const again = await client.json<{ deliveries: Array<{ state: string }> }>('GET', `/api/v1/webhooks/${hookId}/deliveries?limit=1000`);
      return again.body.deliveries.every((d) => d.state === 'delivered');
    }, 'the delivery log saying delivered', 20_000);
  });

  it('refuses URLs that point inside (SSRF) and does not follow a redirect there', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'http://127.0.0.2:9/x', 'http://[::1]:9/x', 'http://10.0.0.1/x', 'http://[::ffff:169.254.169.254]/x', 'http://192.168.1.10/x', 'file:///etc/passwd']) {
      const r = await post(client, { url });
      expect(r.status, url).toBe(400);
      expect(r.body.code, url).toBe('invalid_webhook_url');
    }
    const redirecting = await post(client, { url: `${hooks.url}/redirect`, events: ['model.ready'] });
    expect(redirecting.status).toBe(201);
    const up = await client.upload(SAMPLES.stlBox);
    await client.waitForState(String(up.body.id), ['ready']);
    const log = await eventually(async () => {
      const r = await client.json<{ deliveries: Array<{ lastStatus?: number; lastError?: string }> }>('GET', `/api/v1/webhooks/${String(redirecting.body.id)}/deliveries`);
      return r.body.deliveries.find((d) => d.lastStatus === 302);
    }, 'the redirect recorded');
    expect(log.lastError).toMatch(/redirects are not followed/);
    expect((await client.request('DELETE', `/api/v1/webhooks/${String(redirecting.body.id)}`)).status).toBe(204);
  });
});

describe('the event stream', () => {
  /** Reads SSE from /api/v1/events until `until` says stop; the events parsed. */
  async function readEvents(c: ApiClient, until: (events: Array<{ id: number; type: string; data: Received['body'] }>) => boolean, headers: Record<string, string> = {}, query = '') {
    const controller = new AbortController();
    const res = await c.request('GET', `/api/v1/events${query}`, { headers });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: Array<{ id: number; type: string; data: Received['body'] }> = [];
    const reader = res.body!.getReader();
    let text = '';
    const timer = setTimeout(() => controller.abort(), 30_000);
    try {
      while (!until(events)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
        let cut: number;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, cut);
          text = text.slice(cut + 2);
          const field = (name: string) => block.split('\n').find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
          if (field('id')) events.push({ id: Number(field('id')), type: field('event')!, data: JSON.parse(field('data')!) as Received['body'] });
        }
      }
    } finally {
      clearTimeout(timer);
      await reader.cancel().catch(() => undefined);
    }
    return events;
  }

  it('streams a project\'s model events as they happen, and replays from Last-Event-ID', async () => {
    const reading = readEvents(client, (events) => events.some((e) => e.type === 'model.ready'));
    await sleep(300);
    const up = await client.upload(SAMPLES.cube);
    const id = String(up.body.id);
    const seen = await reading;
    expect(seen.filter((e) => e.data.data.model.id === id).map((e) => e.type)).toEqual(expect.arrayContaining(['model.queued', 'model.converting', 'model.ready']));
    const ids = seen.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);

    // A reconnect with the id of the first event gets the rest again, in order.
    const replay = await readEvents(client, (events) => events.some((e) => e.type === 'model.ready' && e.data.data.model.id === id), { 'last-event-id': String(ids[0]) });
    expect(replay[0]!.id).toBe(ids[1]);

    // Another project's stream, replayed from the start until its own model is ready, shows none of ours.
    const theirId = String((await other.upload(SAMPLES.stlBox)).body.id);
    const theirs = await readEvents(other, (events) => events.some((e) => e.type === 'model.ready' && e.data.data.model.id === theirId), {}, '?after=0');
    expect(theirs.length).toBeGreaterThanOrEqual(3);
    expect(theirs.filter((e) => e.data.data.model.id !== theirId)).toEqual([]);
  });
});

describe('batches', () => {
  it('holds uploads until started, follows one status, and sends one batch.ended when every job has ended', async () => {
    const created = await client.json<{ id: string; state: string; total: number }>('POST', '/api/v1/batches', { body: JSON.stringify({ name: 'nightly' }), headers: { 'content-type': 'application/json' } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ state: 'open', total: 0 });
    const batch = created.body.id;
    const bad = (await import('node:path')).join((await import('../helpers/convert')).tempDir('cadfleet-batch-'), 'bad.stp');
    (await import('node:fs')).writeFileSync(bad, 'ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n#1=GARBAGE;\nENDSEC;\nEND-ISO-10303-21;\n');
    const ids: string[] = [];
    for (const file of [SAMPLES.cube, SAMPLES.stlBox, SAMPLES.assembly, bad]) {
      const form = new FormData();
      form.append('batch', batch);
      form.append('file', new Blob([(await import('node:fs')).readFileSync(file)]), file.split('/').pop()!);
      const up = await client.json('POST', '/api/v1/models?reuse=false', { body: form });
      expect(up.status, JSON.stringify(up.body)).toBe(201);
      expect(up.body).toMatchObject({ state: 'queued', batch });
      ids.push(String(up.body.id));
    }
    // Held: no conversion starts before the batch does.
    await sleep(1500);
    const held = await h.db.query('SELECT count(*)::int AS n FROM conversion_attempts WHERE model_id = ANY ($1::uuid[])', [ids]);
    expect(held.rows[0].n).toBe(0);
    expect((await client.json('GET', `/api/v1/batches/${batch}`)).body).toMatchObject({ state: 'open', total: 4, counts: { queued: 4 } });

    const started = await client.json('POST', `/api/v1/batches/${batch}/start`);
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ state: 'started' });
    expect((await client.json('POST', `/api/v1/batches/${batch}/start`)).body).toMatchObject({ code: 'batch_not_open' });

    const ended = await eventually(async () => {
      const b = await client.json<{ state: string; counts: Record<string, number> }>('GET', `/api/v1/batches/${batch}`);
      return b.body.state === 'ended' ? b.body : undefined;
    }, 'the batch ending', 60_000);
    expect(ended.counts).toEqual({ queued: 0, converting: 0, ready: 3, failed: 1 });
    const events = await eventually(async () => {
      const mine = hooks.got.filter((g) => g.body.type === 'batch.ended' && g.body.data.batch?.id === batch);
      return mine.length ? mine : undefined;
    }, 'the batch.ended webhook', 20_000);
    expect(new Set(events.map((e) => e.eventId)).size).toBe(1);
    expect(events[0]!.signed).toBe(true);
    expect(events[0]!.body.data.batch).toMatchObject({ state: 'ended', total: 4, counts: { ready: 3, failed: 1 } });
    const late = new FormData();
    late.append('batch', batch);
    late.append('file', new Blob([(await import('node:fs')).readFileSync(SAMPLES.cube)]), 'cube.stp');
    expect((await client.json('POST', '/api/v1/models', { body: late })).body).toMatchObject({ statusCode: 409, code: 'batch_not_open' });
    expect((await other.json('GET', `/api/v1/batches/${batch}`)).status).toBe(404);
  });
});
