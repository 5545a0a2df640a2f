// api benchmark: requests per second and p99 latency of GET /api/v1/models?limit=20 through
// the nginx LB (HTTPS, the fleet CA) vs straight to one api host (HTTP on its port 8080, as the
// LB reaches it), from the same client at the same concurrency, each run bounded in time.
//
// Both ways are measured with keep-alive (the LB keeps client connections, docs/architecture.md
// "LB keep-alive") and with a connection per request (`Connection: close`: a new TCP connection
// and TLS handshake, session resumed, for every LB request), each through the LB against
// straight to the api, like for like. Through the LB also over HTTP/2 (ALPN h2, checked): each
// client one session with one request in flight, like the HTTP/1.1 keep-alive clients, and
// compared with straight to the api with keep-alive. Then api-2's service is stopped (and started
// again after), so that the LB's keep-alive rows reach the same single host as the straight ones:
// the rows that hold the 0.8x goal.
//
// Run alone: sudo node --import tsx bench/api.ts   (BENCH_QUICK=1: 1 run of 3 s per target)
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { type Answer, type LbClient, h2Client } from '../test/helpers/lb-clients';
import { CA, type FleetInfo, cadfleet, cadfleetSync, cores, cpuMeter, ensureFleet, hostCpuSeconds, onHosts, onInterrupt, param, say, until } from './fleet';
import { type Row, type Section, median, spread, percentile } from './report';

const log = say('api');

interface Target {
  label: string;
  url: string;
  /** HTTP/1.1 (node:http/https, keep-alive or a connection per request) or HTTP/2 (node:http2, keep-alive). */
  protocol: 'http/1.1' | 'h2';
  keepAlive: boolean;
}

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  /** TLS handshakes, and how many of them resumed a session. */
  handshakes: number;
  resumed: number;
  /** HTTP/2: requests sent again on a new session because the LB had not processed them (REFUSED_STREAM, GOAWAY). */
  retries: number;
  /** Busy share of the machine's CPUs, and the client's own CPU seconds per 1000 requests. */
  machineBusy: number;
  clientCpuPer1000: number;
  /** CPU seconds per 1000 requests by role (all hosts of the role together). */
  hostCpuPer1000: Record<string, number>;
}


/** The requests of one measurement: `send(i)` is client i's next request; it resolves to the status, 0 when it failed. */
interface LoadClients {
  send(i: number): Promise<number>;
  tls(): { handshakes: number; resumed: number; retries: number };
  close(): void;
}

/** HTTP/1.1: one agent with a socket per client (kept alive, or closed after each answer), no retries. */
function h1Clients(target: Target, fleet: FleetInfo, concurrency: number): LoadClients {
  const url = new URL(target.url);
  const secure = url.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ ca: fs.readFileSync(CA), keepAlive: target.keepAlive, maxSockets: concurrency })
    : new http.Agent({ keepAlive: target.keepAlive, maxSockets: concurrency });
  const headers: Record<string, string> = { authorization: `Bearer ${fleet.key}`, ...(target.keepAlive ? {} : { connection: 'close' }) };
  let handshakes = 0;
  let resumed = 0;
  const once = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(url, { headers, agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      });
      if (secure) {
        // Only a new socket: one reused with keep-alive would collect a listener per request.
        req.on('socket', (socket) =>
          socket.connecting &&
          socket.once('secureConnect', () => {
            handshakes++;
            if ((socket as TLSSocket).isSessionReused()) resumed++;
          }),
        );
      }
      req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
      req.on('error', reject);
      req.end();
    });
  return {
    send: () => once().catch(() => 0),
    tls: () => ({ handshakes, resumed, retries: 0 }),
    close: () => agent.destroy(),
  };
}

/** The sessions' ALPN protocols, when any is not h2: what the HTTP/2 row must not call HTTP/2. */
const notH2 = (clients: LbClient[]): string | undefined => {
  const agreed: Record<string, number> = {};
  for (const c of clients) for (const [p, n] of Object.entries(c.stats.alpn)) agreed[p] = (agreed[p] ?? 0) + n;
  const others = Object.keys(agreed).filter((p) => p !== 'h2');
  return others.length ? Object.entries(agreed).map(([p, n]) => `${n} session(s) ${p}`).join(', ') : undefined;
};

/**
 * HTTP/2 (test/helpers/lb-clients.ts, the client the LB's reload test and bench lb-local use):
 * one client, so one session, per concurrent client, each with one request in flight.
 */
function h2Clients(target: Target, fleet: FleetInfo, concurrency: number): LoadClients {
  const url = new URL(target.url);
  const path = `${url.pathname}${url.search}`;
  const ca = fs.readFileSync(CA);
  const headers = { authorization: `Bearer ${fleet.key}` };
  const clients = Array.from({ length: concurrency }, () => h2Client({ origin: url.origin, ca }));
  const sum = (f: (c: LbClient) => number): number => clients.reduce((n, c) => n + f(c), 0);
  return {
    send: (i) =>
      clients[i]!
        .request('GET', path, headers)
        .then((a) => a.status)
        .catch(() => 0),
    tls: () => {
      const wrong = notH2(clients);
      if (wrong) throw new Error(`${target.label}: ALPN did not agree on h2 with ${url.origin} (${wrong}); the row would not measure HTTP/2`);
      return { handshakes: sum((c) => c.stats.handshakes), resumed: sum((c) => c.stats.resumed), retries: sum((c) => c.stats.retries) };
    },
    close: () => {
      for (const c of clients) c.close();
    },
  };
}

/** Before anything is measured: one request over HTTP/2 to the LB, whose session must have agreed on h2 with ALPN. */
async function requireH2(target: Target, fleet: FleetInfo): Promise<void> {
  const url = new URL(target.url);
  const client = h2Client({ origin: url.origin, ca: fs.readFileSync(CA) });
  try {
    const answer: Answer | Error = await client.request('GET', `${url.pathname}${url.search}`, { authorization: `Bearer ${fleet.key}` }).catch((err: Error) => err);
    const wrong = notH2([client]);
    if (wrong) throw new Error(`HTTP/2 to the LB: ALPN did not agree on h2 with ${url.origin} (${wrong}); the LB must serve HTTP/2 over TLS (listen 443 ssl http2)`);
    if (answer instanceof Error) {
      const agreed = client.stats.alpn.h2 ? 'the session agreed on h2, but ' : 'no HTTP/2 session was established: ';
      throw new Error(`HTTP/2 to the LB: ${agreed}the request failed (${answer.message})`);
    }
    log(`HTTP/2 to the LB: ALPN h2, GET answered ${answer.status}`);
  } finally {
    client.close();
  }
}

/** A closed loop: `concurrency` clients each send the next request when the last one is answered. */
async function loadOnce(target: Target, fleet: FleetInfo, concurrency: number, seconds: number): Promise<Run> {
  const clients = (target.protocol === 'h2' ? h2Clients : h1Clients)(target, fleet, concurrency);
  const latencies: number[] = [];
  let errors = 0;
  const machine = cpuMeter();
  const hostCpu0 = Object.fromEntries(Object.values(fleet.names).map((h) => [h, hostCpuSeconds(h)]));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const status = await clients.send(i);
        latencies.push(performance.now() - t0);
        if (status !== 200) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const machineBusy = machine();
  const hostCpuPer1000: Record<string, number> = {};
  for (const [id, h] of Object.entries(fleet.names)) {
    const role = id.replace(/-\d+$/, '');
    hostCpuPer1000[role] = (hostCpuPer1000[role] ?? 0) + ((hostCpuSeconds(h) - hostCpu0[h]!) / Math.max(1, latencies.length)) * 1000;
  }
  // Read before close(): for HTTP/2 it throws when a session did not agree on h2.
  let tls: ReturnType<LoadClients['tls']>;
  try {
    tls = clients.tls();
  } finally {
    clients.close();
  }
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    requests: latencies.length,
    ...tls,
    machineBusy,
    clientCpuPer1000: ((cpu.user + cpu.system) / 1e6 / Math.max(1, latencies.length)) * 1000,
    hostCpuPer1000,
  };
}

export async function benchApi(): Promise<Section> {
  const concurrency = param('API_CONCURRENCY', 8, 8);
  const seconds = param('API_SECONDS', 10, 3);
  const runs = param('API_RUNS', 3, 1);
  const warmup = param('API_WARMUP_SECONDS', 3, 1);
  const fleet: FleetInfo = await ensureFleet(log);
  const path = '/api/v1/models?limit=20';
  const direct = `http://${fleet.hosts['api-1']}:8080${path}`;
  const targets = {
    keepAlive: { label: 'straight to api-1, HTTP keep-alive', url: direct, protocol: 'http/1.1', keepAlive: true },
    close: { label: 'straight to api-1, HTTP, a connection per request', url: direct, protocol: 'http/1.1', keepAlive: false },
    lbKeepAlive: { label: 'through the LB, HTTPS, HTTP/1.1 keep-alive (2 api hosts)', url: `https://${fleet.lb}${path}`, protocol: 'http/1.1', keepAlive: true },
    lbH2: { label: 'through the LB, HTTPS, HTTP/2 (2 api hosts)', url: `https://${fleet.lb}${path}`, protocol: 'h2', keepAlive: true },
    lb: { label: 'through the LB, HTTPS, a connection per request (2 api hosts)', url: `https://${fleet.lb}${path}`, protocol: 'http/1.1', keepAlive: false },
    keepAliveAlone: { label: 'straight to api-1, HTTP keep-alive (api-2 stopped)', url: direct, protocol: 'http/1.1', keepAlive: true },
    lbKeepAliveAlone: { label: 'through the LB, HTTPS, HTTP/1.1 keep-alive (api-1 alone behind it)', url: `https://${fleet.lb}${path}`, protocol: 'http/1.1', keepAlive: true },
    lbH2Alone: { label: 'through the LB, HTTPS, HTTP/2 (api-1 alone behind it)', url: `https://${fleet.lb}${path}`, protocol: 'h2', keepAlive: true },
  } satisfies Record<string, Target>;
  type Name = keyof typeof targets;
  // First both api hosts behind the LB; then api-2 stopped, so that the LB and the straight rows
  // reach the same single api host.
  const twoApis: Name[] = ['keepAlive', 'close', 'lbKeepAlive', 'lbH2', 'lb'];
  const oneApi: Name[] = ['keepAliveAlone', 'lbKeepAliveAlone', 'lbH2Alone'];

  await requireH2(targets.lbH2, fleet);
  // Interleaved: each round measures every target once, so drift on a shared machine hits all alike.
  const results = Object.fromEntries(Object.keys(targets).map((k) => [k, [] as Run[]])) as Record<Name, Run[]>;
  const measure = async (names: Name[]): Promise<void> => {
    for (const name of names) await loadOnce(targets[name], fleet, concurrency, warmup);
    for (let round = 0; round < runs; round++) {
      for (const name of names) {
        const t: Target = targets[name];
        const r = await loadOnce(t, fleet, concurrency, seconds);
        log(`round ${round + 1}/${runs}, ${t.label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.errors} errors, machine ${(r.machineBusy * 100).toFixed(0)}% busy`);
        results[name].push(r);
      }
    }
  };
  await measure(twoApis);

  // The same backend both ways: with two api hosts, two Node processes share this machine's cores
  // with everything else, which a fleet of separate machines would not. With api-2 stopped the
  // LB sends everything to api-1, the host the straight rows reach: what the LB itself costs a
  // request, against the straight keep-alive measured again in the same rounds.
  const upstream = async (): Promise<string> => (await onHosts('lb', ['cat', '/etc/nginx/cadfleet/api-upstream.conf'])).stdout;
  const api2 = fleet.hosts['api-2']!;
  const startApi2 = ['exec', '--env', 'local', 'api/2', '--', 'sudo', 'systemctl', 'start', 'cadfleet-api'];
  const interrupted = onInterrupt(() => void cadfleetSync(startApi2));
  try {
    await onHosts('api/2', ['sudo', 'systemctl', 'stop', 'cadfleet-api']);
    const left = await until('the LB routing to api-1 alone', async () => !(await upstream()).includes(`${api2}:`), 120_000, 500);
    log(`api-2 stopped: the LB's upstream left it out after ${left.toFixed(1)} s; the LB in front of api-1 alone`);
    await measure(oneApi);
  } finally {
    await cadfleet(startApi2);
    const back = await until("api-2 back in the LB's upstream", async () => (await upstream()).includes(`${api2}:`), 180_000, 500).catch((err: unknown) => {
      log(`${(err as Error).message}; run: sudo npx cadfleet exec --env local api/2 -- sudo systemctl start cadfleet-api`);
      return Number.NaN;
    });
    log(`api-2 started again: back in the LB's upstream after ${back.toFixed(1)} s`);
    interrupted();
  }

  const rps = (name: keyof typeof targets): number => median(results[name].map((r) => r.rps));
  const p99 = (name: keyof typeof targets): number => median(results[name].map((r) => r.p99));
  const detail = (name: keyof typeof targets): string => {
    const rs = results[name];
    const errors = rs.reduce((n, r) => n + r.errors, 0);
    const requests = rs.reduce((n, r) => n + r.requests, 0);
    const hs = rs.reduce((n, r) => n + r.handshakes, 0);
    const retries = rs.reduce((n, r) => n + r.retries, 0);
    const tls = hs ? `; ${hs} TLS handshakes${targets[name].protocol === 'h2' ? ' (HTTP/2 sessions, ALPN h2)' : ''}, ${((rs.reduce((n, r) => n + r.resumed, 0) / hs) * 100).toFixed(0)}% resumed` : '';
    const sentAgain = targets[name].protocol === 'h2' ? `; ${retries} sent again (not processed: refused stream or GOAWAY)` : '';
    const roles = ['lb', 'api', 'data'].filter((role) => role in rs[0]!.hostCpuPer1000);
    const cpu = [...roles.map((role) => `${role} ${median(rs.map((r) => r.hostCpuPer1000[role]!)).toFixed(2)}`), `client ${median(rs.map((r) => r.clientCpuPer1000)).toFixed(2)}`].join(', ');
    return `${requests} requests, ${errors} errors; p50 ${median(rs.map((r) => r.p50)).toFixed(1)} ms${tls}${sentAgain}; CPU s per 1000 requests: ${cpu}; machine ${(median(rs.map((r) => r.machineBusy)) * 100).toFixed(0)}% busy`;
  };
  const rpsSpread = (name: keyof typeof targets): string | undefined => (runs > 1 ? spread(results[name].map((r) => r.rps), 0) : undefined);
  const p99Spread = (name: keyof typeof targets): string | undefined => (runs > 1 ? spread(results[name].map((r) => r.p99), 1) : undefined);
  const rpsName = (name: keyof typeof targets): string => `requests/s, ${targets[name].label}`;
  const p99Name = (name: keyof typeof targets): string => `p99 latency, ${targets[name].label}`;
  const likeForLike = rps('lbKeepAlive') / rps('keepAlive');
  const h2LikeForLike = rps('lbH2') / rps('keepAlive');
  const sameBackend = rps('lbKeepAliveAlone') / rps('keepAliveAlone');
  const h2SameBackend = rps('lbH2Alone') / rps('keepAliveAlone');
  const goal = (ratio: number): string => `goal: at least 0.8x direct throughput with keep-alive, ${ratio >= 0.8 ? 'met' : 'missed'}`;

  const rows: Row[] = [
    { name: rpsName('keepAlive'), median: rps('keepAlive'), unit: 'req/s', spread: rpsSpread('keepAlive'), note: detail('keepAlive') },
    { name: rpsName('close'), median: rps('close'), unit: 'req/s', spread: rpsSpread('close'), baseline: rpsName('keepAlive'), ratio: rps('close') / rps('keepAlive'), note: detail('close') },
    { name: rpsName('lbKeepAlive'), median: rps('lbKeepAlive'), unit: 'req/s', spread: rpsSpread('lbKeepAlive'), baseline: rpsName('keepAlive'), ratio: likeForLike, note: `two api processes sharing the cores (the same-backend rows below hold the goal); ${detail('lbKeepAlive')}` },
    { name: rpsName('lbH2'), median: rps('lbH2'), unit: 'req/s', spread: rpsSpread('lbH2'), baseline: rpsName('keepAlive'), ratio: h2LikeForLike, note: `two api processes sharing the cores (the same-backend rows below hold the goal); ${detail('lbH2')}` },
    { name: rpsName('lb'), median: rps('lb'), unit: 'req/s', spread: rpsSpread('lb'), baseline: rpsName('close'), ratio: rps('lb') / rps('close'), note: detail('lb') },
    { name: rpsName('keepAliveAlone'), median: rps('keepAliveAlone'), unit: 'req/s', spread: rpsSpread('keepAliveAlone'), note: detail('keepAliveAlone') },
    { name: rpsName('lbKeepAliveAlone'), median: rps('lbKeepAliveAlone'), unit: 'req/s', spread: rpsSpread('lbKeepAliveAlone'), baseline: rpsName('keepAliveAlone'), ratio: sameBackend, note: `${goal(sameBackend)}; ${detail('lbKeepAliveAlone')}` },
    { name: rpsName('lbH2Alone'), median: rps('lbH2Alone'), unit: 'req/s', spread: rpsSpread('lbH2Alone'), baseline: rpsName('keepAliveAlone'), ratio: h2SameBackend, note: `${goal(h2SameBackend)}; ${detail('lbH2Alone')}` },
    { name: p99Name('keepAlive'), median: p99('keepAlive'), unit: 'ms', spread: p99Spread('keepAlive') },
    { name: p99Name('close'), median: p99('close'), unit: 'ms', spread: p99Spread('close'), baseline: p99Name('keepAlive'), ratio: p99('close') / p99('keepAlive') },
    { name: p99Name('lbKeepAlive'), median: p99('lbKeepAlive'), unit: 'ms', spread: p99Spread('lbKeepAlive'), baseline: p99Name('keepAlive'), ratio: p99('lbKeepAlive') / p99('keepAlive') },
    { name: p99Name('lbH2'), median: p99('lbH2'), unit: 'ms', spread: p99Spread('lbH2'), baseline: p99Name('keepAlive'), ratio: p99('lbH2') / p99('keepAlive') },
    { name: p99Name('lb'), median: p99('lb'), unit: 'ms', spread: p99Spread('lb'), baseline: p99Name('close'), ratio: p99('lb') / p99('close') },
    { name: p99Name('keepAliveAlone'), median: p99('keepAliveAlone'), unit: 'ms', spread: p99Spread('keepAliveAlone') },
    { name: p99Name('lbKeepAliveAlone'), median: p99('lbKeepAliveAlone'), unit: 'ms', spread: p99Spread('lbKeepAliveAlone'), baseline: p99Name('keepAliveAlone'), ratio: p99('lbKeepAliveAlone') / p99('keepAliveAlone') },
    { name: p99Name('lbH2Alone'), median: p99('lbH2Alone'), unit: 'ms', spread: p99Spread('lbH2Alone'), baseline: p99Name('keepAliveAlone'), ratio: p99('lbH2Alone') / p99('keepAliveAlone') },
  ];
  return {
    title: `api: GET /api/v1/models through the LB vs straight to one api host (${concurrency} clients, ${runs} x ${seconds} s per target after a ${warmup} s warm-up, median)`,
    rows,
    notes: [
      `Every request is authenticated with an API key and lists 20 models from PostgreSQL. One Node process, ${concurrency} clients with one request in flight each, from this machine to the fleet's addresses; the rounds interleave the targets: first the five with both api hosts behind the LB, then, with api-2's service stopped and out of the LB's upstream, straight keep-alive again and the LB's HTTP/1.1 keep-alive and HTTP/2 in front of api-1 alone. HTTP/1.1: node:http/https, one agent with up to a socket per client, no retries, the body discarded. HTTP/2: node:http2, a session per client (the LB's reload test's client, test/helpers/lb-clients.ts; a new session is a full TLS handshake, node:http2 keeps no session cache), the body read as text; it sends again only a request the LB says it did not process (refused stream, or above a GOAWAY's last stream), and the bench stops if ALPN did not agree on h2.`,
      'The LB keeps client connections (HTTP/2 and HTTP/1.1 keep-alive; this client measures both) and reaches the api hosts over kept-alive upstream connections. Each LB row is compared like for like: HTTP/1.1 keep-alive and HTTP/2 (as many sessions as clients, one request in flight each) with straight keep-alive, a connection per request (TCP connect and TLS handshake with session resumption for every LB request) with a connection per request. `npm run bench -- lb-local` measures the LB\'s nginx.conf without the fleet.',
      `The client, the LB, both api hosts and PostgreSQL share this machine's ${cores()} CPUs (8 hosts in all), so the figures measure the per-request cost of each path more than the capacity of a real fleet; "machine busy" says how saturated it was.`,
      'The 0.8x goal is judged with the same backend both ways (api-1 alone behind the LB): with two api hosts, a request through the LB costs the api side more CPU than a straight one to a single host (two Node processes on the same cores, each serving half the requests with its own timers and less batching per event-loop turn: compare the api CPU per 1000 requests of the rows), which separate machines would not pay; the two-host rows show it.',
      'CPU seconds per 1000 requests come from each host\'s cgroup (all its processes, background work included) and the client\'s own usage. With the machine saturated, requests/s is about its CPUs divided by the CPU a request costs in all, client included: that sum, not the LB alone, sets the ratios.',
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table } = await import('./report');
  process.stdout.write(`${table(await benchApi())}\n`);
}
