// The LB's keep-alive design (docs/architecture.md, "LB keep-alive"), proved on the real thing:
// the nginx_lb role's nginx.conf rendered by ansible-playbook, run as a private nginx on
// 127.0.0.1 (only paths and ports changed: test/helpers/private-nginx.ts), small HTTP backends
// in the api's place and a WebSocket backend in a streamer's. While HTTP/1.1 keep-alive and
// HTTP/2 clients send at a steady rate, nginx is reloaded again and again with the upstream
// rewritten in between (a backend joins, another leaves), as cadfleet-lb-sync does. Clients that
// follow the documented rules lose nothing, reuse their connections, and no POST runs twice.
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientOptions, WebSocket, WebSocketServer } from 'ws';
import { type Answer, type LbClient, h1Client, h2Client } from '../helpers/lb-clients';
import { type Backend, type PrivateNginx, startBackend, startPrivateNginx } from '../helpers/private-nginx';

const RELOADS = 24;
const RELOAD_GAP_MS = 250;
// nginx_lb_keepalive_time, shortened as the tests shorten every timeout (the role's default is
// 30 s): a removed backend stops this long (and a second) after it left the upstream, as in the
// fleet an api that left is gone within seconds while the others of the old routing live on.
const KEEPALIVE_TIME_MS = 3000;
const LOOPS_PER_CLIENT = 3;
const PAUSE_MS = 10;

interface Streamer {
  address: string;
  close(): Promise<void>;
}

/** A WebSocket echo server in a streamer's place. */
async function startStreamer(): Promise<Streamer> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data.toString())));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

/** A WebSocket through the LB, as a browser opens it: its own connection, HTTP/1.1 (ALPN). */
async function openStream(lb: PrivateNginx, node: string): Promise<{ ws: WebSocket; echo(text: string): Promise<string> }> {
  // ws passes TLS options on to tls.connect; its types do not list ALPN.
  const options: ClientOptions & tls.ConnectionOptions = { ca: lb.ca, ALPNProtocols: ['http/1.1'] };
  const ws = new WebSocket(`wss://127.0.0.1:${lb.httpsPort}/stream/${node}/session-1?token=t`, options);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket upgrade answered ${res.statusCode}`)));
  });
  return {
    ws,
    echo: (text) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no echo in 5 s')), 5000);
        ws.once('message', (data) => {
          clearTimeout(timer);
          resolve(data.toString());
        });
        ws.send(text);
      }),
  };
}

let lb: PrivateNginx;
const backends: Backend[] = [];
const streamers: Streamer[] = [];

beforeAll(async () => {
  backends.push(await startBackend('a'), await startBackend('b'));
  streamers.push(await startStreamer());
  lb = await startPrivateNginx({
    name: 'nginx-lb-reload',
    apiServers: backends.map((b) => b.address),
    streamers: [['s1', streamers[0]!.address]],
    vars: { nginx_lb_keepalive_time: `${KEEPALIVE_TIME_MS / 1000}s` },
  });
}, 60_000);

afterAll(async () => {
  await lb?.stop();
  await Promise.all([...backends, ...streamers].map((b) => b.close()));
});

describe('the LB with client keep-alive, reloaded while clients send', () => {
  it('is what the nginx_lb role renders: HTTP/2 and HTTP/1.1 keep-alive on the TLS server', () => {
    expect(lb.rendered).toMatch(/^\s*listen 443 ssl http2 default_server;$/m);
    expect(lb.rendered).toMatch(/^\s*keepalive_timeout 60s 55s;$/m);
    expect(lb.rendered).toMatch(/^\s*keepalive_time 3s;$/m);
    expect(lb.rendered).not.toMatch(/keepalive_timeout 0;/);
    // Only paths and ports differ from what the role renders.
    const changed = lb.config.split('\n').filter((line) => !lb.rendered.includes(line.trim()));
    expect(changed.every((line) => /127\.0\.0\.1:\d+|_temp_path|cadfleet-nginx-lb-reload|^user |no dynamic modules/.test(line)), changed.join('\n')).toBe(true);
  });

  it(`loses no request across ${RELOADS} reloads while backends join and leave, and keeps its connections between them`, async () => {
    const h1 = h1Client({ origin: lb.origin, ca: lb.ca, keepAlive: true, maxSockets: LOOPS_PER_CLIENT, retryPosts: true });
    const h2 = h2Client({ origin: lb.origin, ca: lb.ca });
    const stream = await openStream(lb, 's1');
    const answeredPosts: string[] = [];
    // Which backend answered each request, and when the request started.
    const served: Array<{ backend: string; startedAt: number }> = [];
    const badAnswers: string[] = [];
    let stop = false;
    let seq = 0;
    const loop = async (client: LbClient, name: string): Promise<void> => {
      while (!stop) {
        const post = seq % 3 === 0;
        const id = `${name}-${seq++}`;
        let answer: Answer | undefined;
        const startedAt = Date.now();
        try {
          answer = await client.request(post ? 'POST' : 'GET', post ? '/api/v1/uploads' : '/api/v1/models?limit=20', { 'x-request-id': id, 'content-type': 'application/json' }, post ? '{"name":"a.step","size":1}' : undefined);
        } catch {
          // counted in the client's stats
        }
        if (answer) {
          if (answer.status !== (post ? 201 : 200)) badAnswers.push(`${name} ${post ? 'POST' : 'GET'} ${answer.status}: ${answer.body.slice(0, 120)}`);
          served.push({ backend: String(answer.headers['x-backend']), startedAt });
          if (post) answeredPosts.push(id);
        }
        await new Promise((r) => setTimeout(r, PAUSE_MS));
      }
    };
    const loops = [...Array.from({ length: LOOPS_PER_CLIENT }, () => loop(h1, 'h1')), ...Array.from({ length: LOOPS_PER_CLIENT }, () => loop(h2, 'h2'))];

    // Membership changes as cadfleet-lb-sync makes them: a new backend joins on even rounds; on odd
    // ones the oldest leaves the upstream, and stops KEEPALIVE_TIME_MS + 1 s after the reload.
    // Halfway, a second streamer joins the map.
    const live = [...backends];
    const removedAt = new Map<string, number>();
    const stopping: Array<Promise<void>> = [];
    const joined: Backend[] = [];
    const echoes: string[] = [];
    for (let round = 0; round < RELOADS; round++) {
      await new Promise((r) => setTimeout(r, RELOAD_GAP_MS));
      if (round % 2 === 0) {
        const backend = await startBackend(`n${round}`);
        backends.push(backend);
        joined.push(backend);
        live.push(backend);
      }
      const leaving = round % 2 === 1 ? live.shift() : undefined;
      lb.writeUpstream(live.map((b) => b.address));
      if (round === RELOADS / 2) {
        streamers.push(await startStreamer());
        lb.writeStreamers([
          ['s1', streamers[0]!.address],
          ['s2', streamers[1]!.address],
        ]);
      }
      await lb.reload();
      if (leaving) {
        removedAt.set(leaving.name, Date.now());
        stopping.push(new Promise((r) => setTimeout(r, KEEPALIVE_TIME_MS + 1000)).then(() => leaving.close()));
      }
      echoes.push(await stream.echo(`after reload ${round + 1}`));
    }
    // The clients go on until the last backend that left has stopped.
    await Promise.all(stopping);
    stop = true;
    await Promise.all(loops);
    const second = await openStream(lb, 's2');
    const secondEcho = await second.echo('hello s2');
    second.ws.close();
    h1.close();
    h2.close();

    // Requests that started after the reload that removed their backend (100 ms of slack for
    // those already on their way), yet reached it: an old worker still served their connection.
    const stale = served.map((r) => r.startedAt - (removedAt.get(r.backend) ?? Infinity)).filter((age) => age > 100);
    const summary = { h1: { ...h1.stats, errors: undefined }, h2: { ...h2.stats, errors: undefined }, staleRouted: stale.length, staleMaxMs: Math.max(0, ...stale) };
    process.stdout.write(`nginx-lb-reload: ${RELOADS} reloads; ${JSON.stringify(summary)}\n`);
    expect(badAnswers, lb.errorLog()).toEqual([]);
    expect(h1.stats.failures, `${h1.stats.errors.join('\n')}\n${lb.errorLog()}`).toBe(0);
    expect(h2.stats.failures, `${h2.stats.errors.join('\n')}\n${lb.errorLog()}`).toBe(0);
    // An HTTP/2 connection that missed a reload (nginx < 1.27.1) uses the old routing no longer than keepalive_time.
    expect(Math.max(0, ...stale)).toBeLessThan(KEEPALIVE_TIME_MS + 500);
    expect(h1.stats.requests).toBeGreaterThan(RELOADS * 5);
    expect(h2.stats.requests).toBeGreaterThan(RELOADS * 5);
    // Keep-alive: a connection serves many requests. HTTP/1.1 reconnects after each reload (the
    // old worker closes idle connections), HTTP/2 once per GOAWAY, which each reload sends (but
    // to a connection that missed an earlier one: nginx < 1.27.1, the next test).
    expect(h1.stats.handshakes).toBeLessThan(h1.stats.requests / 4);
    expect(h2.stats.goaways).toBeGreaterThanOrEqual(RELOADS / 2);
    expect(h2.stats.handshakes).toBeLessThanOrEqual(h2.stats.goaways + 2);
    expect(h2.stats.handshakes).toBeLessThan(h2.stats.requests / 20);
    // Every POST the clients got an answer for reached one backend exactly once: what a client
    // sent again after a reload had never been processed.
    const received = new Map<string, number>();
    for (const b of backends) for (const [id, n] of b.posts) received.set(id, (received.get(id) ?? 0) + n);
    expect([...received].filter(([, n]) => n !== 1)).toEqual([]);
    expect(answeredPosts.filter((id) => !received.has(id))).toEqual([]);
    expect(received.size).toBe(answeredPosts.length);
    // The membership changes took effect: every backend that joined served requests.
    for (const b of joined.slice(0, -1)) expect(b.requests, `${b.name} joined and got no request`).toBeGreaterThan(0);
    expect(served.every((r) => backends.some((b) => b.name === r.backend))).toBe(true);
    // The WebSocket opened before the first reload lived through all of them (the old worker
    // keeps it, worker_shutdown_timeout), and one to the streamer that joined the map works.
    expect(echoes).toEqual(Array.from({ length: RELOADS }, (_, i) => `after reload ${i + 1}`));
    expect(stream.ws.readyState).toBe(WebSocket.OPEN);
    expect(secondEcho).toBe('hello s2');
    stream.ws.close();
  }, 90_000);

  it('ends, within keepalive_time, an HTTP/2 connection that missed the reload (nginx < 1.27.1 sends it no GOAWAY)', async () => {
    const old = await startBackend('old');
    const next = await startBackend('next');
    backends.push(old, next);
    lb.writeUpstream([old.address]);
    await lb.reload();
    // A connection a worker accepted, whose TLS handshake (and so its HTTP/2 start) comes after
    // the reload began: what a client that connects in the instant of a reload does.
    const raw = net.connect(lb.httpsPort, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    await new Promise((r) => setTimeout(r, 200));
    lb.writeUpstream([next.address]);
    await lb.reload();
    const opened = Date.now();
    const session = http2.connect(lb.origin, { createConnection: () => tls.connect({ socket: raw, ca: lb.ca, ALPNProtocols: ['h2'], servername: '127.0.0.1' }) });
    session.on('error', () => undefined);
    let goawayAfter: number | undefined;
    session.once('goaway', () => (goawayAfter = Date.now() - opened));
    const get = (): Promise<string> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/api/v1/models?limit=20' });
        stream.on('response', (h) => resolve(String(h['x-backend'])));
        stream.on('error', reject);
        stream.resume();
      });
    const servedBy: string[] = [];
    try {
      while (goawayAfter === undefined && Date.now() - opened < KEEPALIVE_TIME_MS + 2000) {
        servedBy.push(await get());
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      session.destroy();
    }
    const version = /nginx\/(\S+)/.exec(spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr)?.[1];
    process.stdout.write(`nginx-lb-reload: nginx ${version}: a connection that started its HTTP/2 during a reload was served by ${[...new Set(servedBy)].join(', ')}, GOAWAY after ${goawayAfter} ms\n`);
    expect(goawayAfter, 'no GOAWAY: the connection outlived keepalive_time').toBeDefined();
    // Either nginx told it at once (fixed nginx), or it served the old routing, for keepalive_time at most.
    if (servedBy.includes('old')) expect(goawayAfter!).toBeLessThan(KEEPALIVE_TIME_MS + 500);
    else expect(servedBy.every((b) => b === 'next')).toBe(true);
  }, 30_000);

  it('counts each HTTP/2 stream against the upload limit (limit_conn), as each HTTP/1.1 connection', async () => {
    // nginx_lb_upload_connections (8) uploads in progress per address: the 9th is refused with
    // 429 whether the nine share one HTTP/2 connection or use nine HTTP/1.1 ones.
    const h2 = h2Client({ origin: lb.origin, ca: lb.ca });
    const h1 = h1Client({ origin: lb.origin, ca: lb.ca, keepAlive: true, maxSockets: 9 });
    try {
      for (const [name, client] of [
        ['HTTP/2', h2],
        ['HTTP/1.1', h1],
      ] as const) {
        const statuses = await Promise.all(
          Array.from({ length: 9 }, (_, i) =>
            // Each takes a while to be answered: all nine are in progress at once.
            new Promise((r) => setTimeout(r, i * 20)).then(() => client.request('POST', '/api/v1/models', { 'x-request-id': `${name}-upload-${i}`, 'x-answer-delay-ms': '600' }, 'x'.repeat(1000)).then((a) => a.status)),
          ),
        );
        expect(statuses.filter((s) => s === 201), `${name}: ${statuses.join(',')}`).toHaveLength(8);
        expect(statuses.filter((s) => s === 429), `${name}: ${statuses.join(',')}`).toHaveLength(1);
        // The limit zone has forgotten them once done: 8 more may come.
        await new Promise((r) => setTimeout(r, 300));
      }
    } finally {
      h1.close();
      h2.close();
    }
  }, 60_000);
});
