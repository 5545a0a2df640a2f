// api benchmark: requests per second and p99 latency of GET /api/v1/models?limit=20 through
// the nginx LB (HTTPS, the fleet CA) vs straight to one api host (HTTP on its port 8080, as the
// LB reaches it), from the same client at the same concurrency, each run bounded in time.
//
// Both ways are measured with keep-alive (the LB keeps client connections, docs/architecture.md
// "LB keep-alive") and with a connection per request (`Connection: close`: a new TCP connection
// and TLS handshake, session resumed, for every LB request), each through the LB against
// straight to the api, like for like.
//
// Run alone: sudo node --import tsx bench/api.ts   (BENCH_QUICK=1: 1 run of 3 s per target)
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { CA, type FleetInfo, cores, cpuMeter, ensureFleet, hostCpuSeconds, param, say } from './fleet';
import { type Row, type Section, median, spread } from './report';

const log = say('api');

interface Target {
  label: string;
  url: string;
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
  /** Busy share of the machine's CPUs, and the client's own CPU seconds per 1000 requests. */
  machineBusy: number;
  clientCpuPer1000: number;
  /** CPU seconds per 1000 requests by role (all hosts of the role together). */
  hostCpuPer1000: Record<string, number>;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;

/** A closed loop: `concurrency` clients each send the next request when the last one is answered. */
async function loadOnce(target: Target, fleet: FleetInfo, concurrency: number, seconds: number): Promise<Run> {
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
        req.on('socket', (socket) =>
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

  const latencies: number[] = [];
  let errors = 0;
  const machine = cpuMeter();
  const hostCpu0 = Object.fromEntries(Object.values(fleet.names).map((h) => [h, hostCpuSeconds(h)]));
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const status = await once().catch(() => 0);
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
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return {
    rps: latencies.length / elapsed,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    errors,
    requests: latencies.length,
    handshakes,
    resumed,
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
    keepAlive: { label: 'straight to api-1, HTTP keep-alive', url: direct, keepAlive: true },
    close: { label: 'straight to api-1, HTTP, a connection per request', url: direct, keepAlive: false },
    lbKeepAlive: { label: 'through the LB, HTTPS, HTTP/1.1 keep-alive (2 api hosts)', url: `https://${fleet.lb}${path}`, keepAlive: true },
    lb: { label: 'through the LB, HTTPS, a connection per request (2 api hosts)', url: `https://${fleet.lb}${path}`, keepAlive: false },
  } satisfies Record<string, Target>;

  // Interleaved: each round measures every target once, so drift on a shared machine hits all alike.
  const results: Record<keyof typeof targets, Run[]> = { keepAlive: [], close: [], lbKeepAlive: [], lb: [] };
  for (const t of Object.values(targets)) await loadOnce(t, fleet, concurrency, warmup);
  for (let round = 0; round < runs; round++) {
    for (const [name, t] of Object.entries(targets) as Array<[keyof typeof targets, Target]>) {
      const r = await loadOnce(t, fleet, concurrency, seconds);
      log(`round ${round + 1}/${runs}, ${t.label}: ${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, ${r.errors} errors, machine ${(r.machineBusy * 100).toFixed(0)}% busy`);
      results[name].push(r);
    }
  }

  const rps = (name: keyof typeof targets): number => median(results[name].map((r) => r.rps));
  const p99 = (name: keyof typeof targets): number => median(results[name].map((r) => r.p99));
  const detail = (name: keyof typeof targets): string => {
    const rs = results[name];
    const errors = rs.reduce((n, r) => n + r.errors, 0);
    const requests = rs.reduce((n, r) => n + r.requests, 0);
    const hs = rs.reduce((n, r) => n + r.handshakes, 0);
    const tls = hs ? `; ${hs} TLS handshakes, ${((rs.reduce((n, r) => n + r.resumed, 0) / hs) * 100).toFixed(0)}% resumed` : '';
    const roles = ['lb', 'api', 'data'].filter((role) => role in rs[0]!.hostCpuPer1000);
    const cpu = [...roles.map((role) => `${role} ${median(rs.map((r) => r.hostCpuPer1000[role]!)).toFixed(2)}`), `client ${median(rs.map((r) => r.clientCpuPer1000)).toFixed(2)}`].join(', ');
    return `${requests} requests, ${errors} errors; p50 ${median(rs.map((r) => r.p50)).toFixed(1)} ms${tls}; CPU s per 1000 requests: ${cpu}; machine ${(median(rs.map((r) => r.machineBusy)) * 100).toFixed(0)}% busy`;
  };
  const rpsSpread = (name: keyof typeof targets): string | undefined => (runs > 1 ? spread(results[name].map((r) => r.rps), 0) : undefined);
  const p99Spread = (name: keyof typeof targets): string | undefined => (runs > 1 ? spread(results[name].map((r) => r.p99), 1) : undefined);
  const rpsName = (name: keyof typeof targets): string => `requests/s, ${targets[name].label}`;
  const p99Name = (name: keyof typeof targets): string => `p99 latency, ${targets[name].label}`;
  const likeForLike = rps('lbKeepAlive') / rps('keepAlive');

  const rows: Row[] = [
    { name: rpsName('keepAlive'), median: rps('keepAlive'), unit: 'req/s', spread: rpsSpread('keepAlive'), note: detail('keepAlive') },
    { name: rpsName('close'), median: rps('close'), unit: 'req/s', spread: rpsSpread('close'), baseline: rpsName('keepAlive'), ratio: rps('close') / rps('keepAlive'), note: detail('close') },
    { name: rpsName('lbKeepAlive'), median: rps('lbKeepAlive'), unit: 'req/s', spread: rpsSpread('lbKeepAlive'), baseline: rpsName('keepAlive'), ratio: likeForLike, note: `goal: at least 0.8x direct throughput with keep-alive, ${likeForLike >= 0.8 ? 'met' : 'missed'}; ${detail('lbKeepAlive')}` },
    { name: rpsName('lb'), median: rps('lb'), unit: 'req/s', spread: rpsSpread('lb'), baseline: rpsName('close'), ratio: rps('lb') / rps('close'), note: detail('lb') },
    { name: p99Name('keepAlive'), median: p99('keepAlive'), unit: 'ms', spread: p99Spread('keepAlive') },
    { name: p99Name('close'), median: p99('close'), unit: 'ms', spread: p99Spread('close'), baseline: p99Name('keepAlive'), ratio: p99('close') / p99('keepAlive') },
    { name: p99Name('lbKeepAlive'), median: p99('lbKeepAlive'), unit: 'ms', spread: p99Spread('lbKeepAlive'), baseline: p99Name('keepAlive'), ratio: p99('lbKeepAlive') / p99('keepAlive') },
    { name: p99Name('lb'), median: p99('lb'), unit: 'ms', spread: p99Spread('lb'), baseline: p99Name('close'), ratio: p99('lb') / p99('close') },
  ];
  return {
    title: `api: GET /api/v1/models through the LB vs straight to one api host (${concurrency} clients, ${runs} x ${seconds} s per target after a ${warmup} s warm-up, median)`,
    rows,
    notes: [
      `Every request is authenticated with an API key and lists 20 models from PostgreSQL. One Node client (node:http/https, no retries), ${concurrency} requests in flight, from this machine to the fleet's addresses; the rounds interleave the four targets.`,
      'The LB keeps client connections (HTTP/2 and HTTP/1.1 keep-alive; this client speaks HTTP/1.1) and reaches the two api hosts over kept-alive upstream connections. Each LB row is compared like for like: keep-alive with keep-alive, a connection per request (TCP connect and TLS handshake with session resumption for every LB request) with a connection per request. `npm run bench -- lb-local` measures the LB\'s nginx.conf without the fleet.',
      `The client, the LB, both api hosts and PostgreSQL share this machine's ${cores()} CPUs (8 hosts in all), so the figures measure the per-request cost of each path more than the capacity of a real fleet; "machine busy" says how saturated it was.`,
      'CPU seconds per 1000 requests come from each host\'s cgroup (all its processes, background work included) and the client\'s own usage. With the machine saturated, requests/s is about its CPUs divided by the CPU a request costs in all, client included: that sum, not the LB alone, sets the ratios.',
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table } = await import('./report');
  process.stdout.write(`${table(await benchApi())}\n`);
}
