// The streaming protocol against real processes: PostgreSQL, Redis and s3rver from the harness,
// the api and a worker converting a real STEP assembly, and `main.ts streamer` processes, with a
// real WebSocket client (ws). Small frames (CADFLEET_STREAM_CHUNK_TRIANGLES=100) so parts are
// split, and small windows so the client decides when the server may go on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManifestMessage } from '../../app/src/streamer/protocol';
import { type StreamClaims, signStreamToken } from '../../app/src/shared/stream-token';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, eventually, startHarness } from '../service/harness';
import { type StreamClient, decoderReady, openStream } from './client';
import { STREAM_ENV, type StreamerProcess, startStreamer } from './streamers';

const WINDOW = 16 * 1024; // the smallest window a client may ask for

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let modelId: string;
let adminKey: string;
const streamers: StreamerProcess[] = [];

interface Session {
  sessionId: string;
  streamUrl: string;
  node: string;
  resumed: boolean;
}

async function session(body?: object): Promise<{ status: number; body: Session & { code?: string } }> {
  const res = await client.json<Session & { code?: string }>('POST', `/api/v1/models/${modelId}/sessions`, {
    body: body ? JSON.stringify(body) : undefined,
    headers: body ? { 'content-type': 'application/json' } : {},
  });
  return { status: res.status, body: res.body };
}

async function newSession(): Promise<Session> {
  const res = await session();
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** Geometry parts by the triangles their own meshes draw (the manifest counts subtrees). */
function ownTriangles(manifest: ManifestMessage['manifest']): Map<string, number> {
  const byId = new Map(manifest.parts.map((p) => [p.id, p]));
  return new Map(
    manifest.parts.filter((p) => p.meshes.length > 0).map((p) => [p.id, p.triangles - p.children.reduce((n, c) => n + (byId.get(c)?.triangles ?? 0), 0)]),
  );
}

function trianglesByPart(c: StreamClient): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of c.frames) out.set(f.header.part, (out.get(f.header.part) ?? 0) + f.triangles);
  return out;
}

const diagonal = (b: { min: number[]; max: number[] } | null): number => (b ? Math.hypot(...b.max.map((x, i) => x - b.min[i]!)) : 0);

beforeAll(async () => {
  await decoderReady;
  h = await startHarness('streamer', { env: { ...STREAM_ENV, CADFLEET_STREAM_CHUNK_TRIANGLES: '100', CADFLEET_DRAIN_TIMEOUT_MS: '5000' } });
  api = await h.start('api');
  await h.start('worker');
  client = apiClient(api.url, await h.createKey('stream'));
  adminKey = await h.createKey('ops', true);
  const up = await client.upload(SAMPLES.assembly);
  expect(up.status).toBe(201);
  modelId = String(up.body.id);
  await client.waitForState(modelId, ['ready'], { timeoutMs: 90_000 });
  streamers.push(await startStreamer(h, 'stream-a', { CADFLEET_STREAM_MAX_SESSIONS: '2' }));
});

afterAll(async () => {
  await Promise.all(streamers.map((s) => s.stop()));
  await h?.stop();
});

describe('streaming protocol', () => {
  it('answers clear errors for unknown models and sessions, and names the node in the stream URL', async () => {
    const other = await client.json('POST', `/api/v1/models/00000000-0000-4000-8000-000000000000/sessions`);
    expect(other.status).toBe(404);
    const bad = await session({ resume: 'not-a-session' });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('invalid_resume');
    const unknown = await session({ resume: '00000000-0000-4000-8000-000000000000' });
    expect(unknown.status).toBe(404);
    expect(unknown.body.code).toBe('session_not_found');
    const s = await newSession();
    expect(s.node).toBe('stream-a');
    expect(s.streamUrl).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${streamers[0]!.port}/stream/stream-a/${s.sessionId}\\?token=v1\\.`));
  });

  it('sends the manifest first, then the largest parts first, and geometry long before the whole model', async () => {
    const s = await newSession();
    const c = openStream(s.streamUrl, { window: WINDOW, autoAck: false });
    await c.waitFor('the first frame', () => c.frames.length > 0);
    expect(c.events[0]).toMatchObject({ kind: 'message', message: { type: 'manifest', sessionId: s.sessionId, node: 'stream-a', resumed: false } });
    const manifest = c.manifest!;
    expect(manifest.frames).toBeGreaterThan(20);
    // Without acknowledgements the server stops at the window: the client holds decoded geometry
    // while most of the model has not even been sent.
    expect(c.frames[0]!.triangles).toBeGreaterThan(0);
    expect(c.frames[0]!.header.part).toBe(manifest.order[0]);
    expect(c.complete).toBeUndefined();
    await new Promise((r) => setTimeout(r, 300));
    expect(manifest.window).toBe(WINDOW);
    expect(c.frames.reduce((n, f) => n + f.bytes, 0)).toBeLessThanOrEqual(WINDOW);
    expect(c.frames.length).toBeLessThan(manifest.frames);

    // From now on the client acknowledges every frame, as the viewer does.
    c.ws.on('message', () => c.ack());
    c.ack();
    await c.closed;
    expect(c.complete).toMatchObject({ type: 'complete', frames: manifest.frames, parts: manifest.order.length });
    expect(c.close).toMatchObject({ code: 1000, reason: 'complete' });

    // Every geometry part arrived whole, with the triangles the manifest promises.
    expect(trianglesByPart(c)).toEqual(ownTriangles(manifest.manifest));
    expect(c.frames.reduce((n, f) => n + f.triangles, 0)).toBe(manifest.manifest.triangles);
    // Largest first: parts in the order of their bounding-box diagonals, chunks in order.
    const byId = new Map(manifest.manifest.parts.map((p) => [p.id, p]));
    const diagonals = manifest.order.map((id) => diagonal(byId.get(id)!.bbox));
    expect(diagonals).toEqual([...diagonals].sort((a, b) => b - a));
    const sequence = c.frames.map((f) => f.header.part).filter((p, i, all) => all[i - 1] !== p);
    expect(sequence).toEqual(manifest.order);
    for (const part of manifest.order) expect(c.frames.filter((f) => f.header.part === part).map((f) => f.header.chunk)).toEqual([...Array(manifest.chunks[part]).keys()]);
  });

  it('resumes on the same streamer with exactly the missing parts', async () => {
    const s = await newSession();
    // A viewer that loses its connection after six whole parts, in the middle of the seventh.
    const first = openStream(s.streamUrl, {
      window: WINDOW,
      onFrame: (f, c) => {
        if (c.completeParts().length >= 6 && f.header.chunk + 1 < f.header.chunks) c.terminate();
      },
    });
    await first.closed;
    const have = first.completeParts();
    expect(have.length).toBeGreaterThanOrEqual(6);
    const partial = first.frames.map((f) => f.header.part).filter((p) => !have.includes(p));
    expect(partial.length).toBeGreaterThan(0); // the cut fell inside a part, which must come again whole

    const resumed = await session({ resume: s.sessionId });
    expect(resumed.status).toBe(200);
    expect(resumed.body).toMatchObject({ sessionId: s.sessionId, node: 'stream-a', resumed: true });
    const second = openStream(resumed.body.streamUrl, { have });
    await second.closed;
    const order = second.manifest!.order;
    const missing = order.filter((id) => !have.includes(id));
    expect(second.manifest).toMatchObject({ resumed: true, sending: missing });
    expect([...new Set(second.frames.map((f) => f.header.part))]).toEqual(missing);
    expect(second.close).toMatchObject({ code: 1000 });
    expect([...have, ...second.completeParts()].sort()).toEqual([...order].sort());
  });

  it('refuses forged, expired, other-session and missing tokens, and the wrong node', async () => {
    const a = await newSession();
    const b = await newSession();
    const { searchParams } = new URL(a.streamUrl);
    const token = searchParams.get('token')!;
    const [v, claims, sig] = token.split('.') as [string, string, string];
    const base = `ws://127.0.0.1:${streamers[0]!.port}/stream/stream-a/`;
    const decoded = JSON.parse(Buffer.from(claims, 'base64url').toString()) as StreamClaims;
    const flipped = sig.slice(0, -2) + (sig.at(-2) === 'A' ? 'B' : 'A') + sig.at(-1);
    const cases: Array<[string, string, string, number]> = [
      ['forged signature', `${base}${a.sessionId}?token=${v}.${claims}.${flipped}`, 'token_invalid', 4401],
      ['claims changed to another session', `${base}${b.sessionId}?token=${v}.${Buffer.from(JSON.stringify({ ...decoded, sid: b.sessionId })).toString('base64url')}.${sig}`, 'token_invalid', 4401],
      ['signed with another secret', `${base}${a.sessionId}?token=${signStreamToken('another-secret-another-secret-another', { ...decoded, exp: Date.now() + 60_000 })}`, 'token_invalid', 4401],
      ['expired', `${base}${a.sessionId}?token=${signStreamToken(STREAM_ENV.CADFLEET_STREAM_TOKEN_SECRET!, { ...decoded, exp: Date.now() - 1 })}`, 'token_expired', 4401],
      ["another session's token", `${base}${b.sessionId}?token=${token}`, 'token_mismatch', 4401],
      ['no token', `${base}${a.sessionId}`, 'token_missing', 4401],
      ['another node in the path', `ws://127.0.0.1:${streamers[0]!.port}/stream/stream-z/${a.sessionId}?token=${token}`, 'wrong_node', 4000],
    ];
    for (const [what, url, code, closeCode] of cases) {
      const c = openStream(url);
      const closed = await c.closed;
      expect({ what, code: c.error?.code, close: closed.code, frames: c.frames.length, manifest: !!c.manifest }).toEqual({ what, code, close: closeCode, frames: 0, manifest: false });
    }
    // Not a stream path at all: an HTTP answer, no WebSocket.
    await expect(openStream(`ws://127.0.0.1:${streamers[0]!.port}/elsewhere`).opened).rejects.toThrow(/HTTP 404/);
    // Prometheus sees the refusals (the CloudWatch agent scrapes cadfleet_stream_sessions and the 5xx).
    const metrics = await (await fetch(`http://127.0.0.1:${streamers[0]!.port}/metrics`)).text();
    expect(metrics).toMatch(/^cadfleet_stream_refusals_total\{code="token_invalid"[^}]*\} 3$/m);
    expect(metrics).toMatch(/^cadfleet_http_requests_total\{method="GET",route="\/stream\/:node\/:session",status="401"[^}]*\} 6$/m);
    expect(metrics).toMatch(/^cadfleet_stream_sessions\{[^}]*\} \d+$/m);
    // The genuine tokens still work.
    for (const s of [a, b]) {
      const c = openStream(s.streamUrl);
      expect(await c.closed).toMatchObject({ code: 1000 });
    }
  });

  it('refuses sessions beyond the node limit, and the api stops picking the full node', async () => {
    const [s1, s2, s3] = [await newSession(), await newSession(), await newSession()];
    const c1 = openStream(s1.streamUrl, { window: WINDOW, autoAck: false });
    const c2 = openStream(s2.streamUrl, { window: WINDOW, autoAck: false });
    await c1.waitFor('c1 streaming', () => c1.frames.length > 0);
    await c2.waitFor('c2 streaming', () => c2.frames.length > 0);
    const c3 = openStream(s3.streamUrl);
    expect(await c3.closed).toEqual({ code: 4429, reason: 'session_limit' });
    expect(c3.error).toMatchObject({ code: 'session_limit', resume: true });
    // The registry tells the api the node is full: no streamer can take a session.
    const refused = await eventually(async () => {
      const r = await session();
      return r.status === 503 ? r : undefined;
    }, 'the api to see the full streamer');
    expect(refused.body.code).toBe('no_streamer');
    // /status lists the streamer with its open sessions.
    const status = await client.json<{ nodes: Array<{ id: string; streaming?: { sessions: number; maxSessions: number; live: Array<{ session: string }> } }> }>(
      'GET',
      '/status?format=json',
      { key: adminKey },
    );
    const a = status.body.nodes.find((n) => n.id === 'stream-a');
    expect(a?.streaming).toMatchObject({ sessions: 2, maxSessions: 2 });
    expect(a!.streaming!.live.map((l) => l.session).sort()).toEqual([s1.sessionId, s2.sessionId].sort());
    const html = await (await client.request('GET', '/status', { key: adminKey })).text();
    expect(html).toContain('Streamers (1)');
    expect(html).toContain(s1.sessionId.slice(0, 8));

    c1.ack();
    c1.ws.on('message', () => c1.ack());
    expect(await c1.closed).toMatchObject({ code: 1000 });
    const retried = await eventually(async () => {
      const r = await session({ resume: s3.sessionId });
      return r.status === 200 ? r : undefined;
    }, 'a free slot');
    const c3b = openStream(retried.body.streamUrl);
    expect(await c3b.closed).toMatchObject({ code: 1000 });
    expect(c3b.frames.reduce((n, f) => n + f.triangles, 0)).toBe(c3b.manifest!.manifest.triangles);
    c2.terminate();
  });

  it('drains on SIGTERM: open sessions finish, new ones are refused, the rest resume on another streamer, the process exits', async () => {
    const a = streamers[0]!;
    await eventually(async () => (await a.health()).sessions === 0, 'stream-a to be idle');
    // The registry is told within a beat (100 ms after a count change), not at once: wait until the
    // api sees the slots free, or the next session may still be refused as no_streamer.
    await eventually(async () => {
      const st = await client.json<{ nodes: Array<{ id: string; streaming?: { sessions: number } }> }>('GET', '/status?format=json', { key: adminKey });
      return st.body.nodes.find((n) => n.id === 'stream-a')?.streaming?.sessions === 0;
    }, 'the api to see stream-a idle');
    const finisher = await newSession();
    const straggler = await newSession();
    const late = await newSession();
    const fin = openStream(finisher.streamUrl, { window: WINDOW, autoAck: false });
    const slow = openStream(straggler.streamUrl, { window: WINDOW, autoAck: false });
    await fin.waitFor('the finisher streaming', () => fin.frames.length > 0);
    await slow.waitFor('the straggler streaming', () => slow.frames.length > 0);
    streamers.push(await startStreamer(h, 'stream-b'));

    a.signal('SIGTERM');
    await eventually(async () => (await a.health()).state === 'draining', 'stream-a to drain');
    // New sessions are refused and sent elsewhere.
    const refused = openStream(late.streamUrl);
    expect(await refused.closed).toEqual({ code: 4000, reason: 'draining' });
    expect(refused.error).toMatchObject({ code: 'draining', resume: true });
    // An open session that keeps going finishes inside the drain timeout.
    fin.ack();
    fin.ws.on('message', () => fin.ack());
    expect(await fin.closed).toMatchObject({ code: 1000, reason: 'complete' });
    expect(fin.frames.reduce((n, f) => n + f.triangles, 0)).toBe(fin.manifest!.manifest.triangles);
    // One that does not is told to resume elsewhere when the drain timeout ends.
    expect(await slow.closed).toEqual({ code: 4000, reason: 'draining' });
    expect(slow.resume).toMatchObject({ type: 'resume', reason: 'draining' });
    expect(await a.exited).toEqual({ code: 0, signal: null });
    expect(a.logs()).toMatch(/"finished":1,"moved":1,"msg":"drained"/);

    // The straggler resumes on stream-b with the parts it lacks; the refused one starts there.
    const have = slow.completeParts();
    const resumed = await session({ resume: straggler.sessionId });
    expect(resumed.body).toMatchObject({ node: 'stream-b', resumed: true });
    const rest = openStream(resumed.body.streamUrl, { have });
    expect(await rest.closed).toMatchObject({ code: 1000 });
    const missing = rest.manifest!.order.filter((id) => !have.includes(id));
    expect([...new Set(rest.frames.map((f) => f.header.part))]).toEqual(missing);
    expect([...have, ...rest.completeParts()].sort()).toEqual([...rest.manifest!.order].sort());
    const moved = await session({ resume: late.sessionId });
    expect(moved.body.node).toBe('stream-b');
    expect(await openStream(moved.body.streamUrl).closed).toMatchObject({ code: 1000 });
  });

  it('resumes on another streamer after the one holding the session was killed', async () => {
    const b = streamers[1]!;
    const s = await newSession();
    expect(s.node).toBe('stream-b');
    const first = openStream(s.streamUrl, {
      window: WINDOW,
      onFrame: (_f, c) => {
        if (c.completeParts().length >= 2) b.signal('SIGKILL');
      },
    });
    expect((await first.closed).code).toBe(1006);
    streamers.push(await startStreamer(h, 'stream-c'));
    // stream-b's registry entry lingers until its TTL; the api must not pick it.
    const resumed = await eventually(async () => {
      const r = await session({ resume: s.sessionId });
      return r.status === 200 && r.body.node === 'stream-c' ? r : undefined;
    }, 'the api to resume on stream-c');
    const have = first.completeParts();
    const rest = openStream(resumed.body.streamUrl, { have });
    expect(await rest.closed).toMatchObject({ code: 1000 });
    expect([...new Set(rest.frames.map((f) => f.header.part))]).toEqual(rest.manifest!.order.filter((id) => !have.includes(id)));
    expect(rest.manifest!.resumed).toBe(true);
  });
});
