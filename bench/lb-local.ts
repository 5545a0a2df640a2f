// lb-local benchmark: what the LB's nginx costs a keep-alive client, on this machine alone, with
// no fleet. The nginx_lb role's nginx.conf (rendered by ansible-playbook, only paths and ports
// changed: test/helpers/private-nginx.ts) runs as a private nginx on 127.0.0.1 in front of one
// small HTTP backend process that answers a model list of the api's size; the same client, at
// the same concurrency, measures requests/s straight to the backend (HTTP/1.1 keep-alive, as the
// LB reaches an api) and through nginx over HTTPS with HTTP/1.1 keep-alive, HTTP/2, and a
// connection per request (what the LB forced before it kept client connections), interleaved.
// Twice: with a bare backend (nginx's own cost stands out) and with one that burns the CPU the
// fleet's api and PostgreSQL spend on such a request (what a client of the real LB would see).
//
// It is not the fleet's `api` benchmark (bench/api.ts): no PostgreSQL, no authentication, no
// network namespaces, one backend. It isolates the LB's own cost per request.
//
// Run alone: node --import tsx bench/lb-local.ts   (BENCH_QUICK=1: 1 run of 3 s per target)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type LbClient, h1Client, h2Client } from '../test/helpers/lb-clients';
import { startBackend, startPrivateNginx } from '../test/helpers/private-nginx';
import { cores, cpuMeter, param, say } from './fleet';
import { type Row, type Section, median, spread, percentile } from './report';

const log = say('lb-local');
const PATH = '/api/v1/models?limit=20';

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  requests: number;
  handshakes: number;
  /** CPU seconds per 1000 requests: the client (this process), nginx (all its processes), the backend. */
  cpu: { client: number; nginx: number; backend: number };
  machineBusy: number;
}

/** utime + stime of processes, in seconds (/proc/<pid>/stat fields 14 and 15). */
function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited (an old worker)
    }
  }
  return ticks / 100;
}


async function loadOnce(make: () => LbClient, concurrency: number, seconds: number, pids: { nginx: () => number[]; backend: number }): Promise<Run> {
  const client = make();
  const latencies: number[] = [];
  let errors = 0;
  const machine = cpuMeter();
  const nginxPids = pids.nginx();
  const cpu0 = { client: process.cpuUsage(), nginx: cpuSeconds(nginxPids), backend: cpuSeconds([pids.backend]) };
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        const status = await client
          .request('GET', PATH)
          .then((a) => a.status)
          .catch(() => 0);
        latencies.push(performance.now() - t0);
        if (status !== 200) errors++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  const clientCpu = process.cpuUsage(cpu0.client);
  const per1000 = (s: number): number => (s / Math.max(1, latencies.length)) * 1000;
  const run: Run = {
    rps: latencies.length / elapsed,
    p50: 0,
    p99: 0,
    errors,
    requests: latencies.length,
    handshakes: client.stats.handshakes,
    cpu: {
      client: per1000((clientCpu.user + clientCpu.system) / 1e6),
      nginx: per1000(cpuSeconds(nginxPids) - cpu0.nginx),
      backend: per1000(cpuSeconds([pids.backend]) - cpu0.backend),
    },
    machineBusy: machine(),
  };
  client.close();
  latencies.sort((a, b) => a - b);
  run.p50 = percentile(latencies, 50);
  run.p99 = percentile(latencies, 99);
  return run;
}

/** The backend in a process of its own, as an api is: it must not share the client's event loop. */
async function spawnBackend(cpuMs: number): Promise<{ address: string; pid: number; stop(): void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--backend', String(cpuMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const address = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the backend exited (${code})`)));
    child.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()));
  });
  return { address, pid: child.pid!, stop: () => child.kill('SIGTERM') };
}

/**
 * The CPU the fleet's api and its PostgreSQL spend per `GET /api/v1/models?limit=20` with
 * keep-alive: 0.21 + 0.16 ms, from the `api` benchmark (docs/benchmarks.md, measured on the fleet).
 */
const API_CPU_MS = 0.37;

interface Variant {
  /** Row label suffix. */
  backend: string;
  cpuMs: number;
}

export async function benchLbLocal(): Promise<Section> {
  const concurrency = param('LB_CONCURRENCY', 8, 8);
  const seconds = param('LB_SECONDS', 10, 3);
  const runs = param('LB_RUNS', 3, 1);
  const warmup = param('LB_WARMUP_SECONDS', 2, 1);
  const apiCpuMs = param('LB_BACKEND_CPU_MS', API_CPU_MS, API_CPU_MS);
  const variants: Variant[] = [
    { backend: 'a bare backend', cpuMs: 0 },
    { backend: `a backend that burns ${apiCpuMs} ms of CPU per request (the api's cost)`, cpuMs: apiCpuMs },
  ];
  const rows: Row[] = [];
  for (const variant of variants) rows.push(...(await measureVariant(variant, { concurrency, seconds, runs, warmup })));
  return {
    title: `lb-local: the LB's nginx on this machine, not the fleet (GET ${PATH}, ${concurrency} requests in flight, ${runs} x ${seconds} s per target after a ${warmup} s warm-up, median)`,
    rows,
    notes: [
      "Not the fleet benchmark (`npm run bench -- api` measures the fleet's LB in front of two api hosts and PostgreSQL): here the nginx_lb role's own nginx.conf, rendered by ansible-playbook with only paths and listen ports changed, runs as a private nginx on 127.0.0.1 in front of one Node HTTP backend process that answers a list of 20 models (about 7 KB of JSON) without authentication or a database.",
      `The bare backend shows what nginx and TLS add per request next to a backend that costs almost nothing; the second one burns, before it answers, the CPU that the fleet's api and PostgreSQL were measured to spend per such request (${API_CPU_MS} ms; BENCH_LB_BACKEND_CPU_MS), a model of the api, not the api.`,
      `One Node client (node:http, node:https with a keep-alive agent, node:http2 with one session), ${concurrency} requests in flight; client, nginx (worker_processes auto) and backend share this machine's ${cores()} CPUs, so requests/s is about the CPUs divided by the CPU a request costs in all, the client's TLS included. "Machine busy" counts everything on the machine, other work too.`,
    ],
  };
}

async function measureVariant(variant: Variant, o: { concurrency: number; seconds: number; runs: number; warmup: number }): Promise<Row[]> {
  const { concurrency, seconds, runs, warmup } = o;
  const backend = await spawnBackend(variant.cpuMs);
  const lb = await startPrivateNginx({ name: 'bench-lb-local', apiServers: [backend.address] });
  const pids = { nginx: () => [Number(fs.readFileSync(`${lb.dir}/nginx.pid`, 'utf8')), ...lb.workers()], backend: backend.pid };
  const targets = {
    direct: { label: 'straight to the backend, HTTP/1.1 keep-alive', make: () => h1Client({ origin: `http://${backend.address}`, keepAlive: true, maxSockets: concurrency }) },
    h1: { label: 'through nginx, HTTPS, HTTP/1.1 keep-alive', make: () => h1Client({ origin: lb.origin, ca: lb.ca, keepAlive: true, maxSockets: concurrency }) },
    h2: { label: 'through nginx, HTTPS, HTTP/2 (one connection)', make: () => h2Client({ origin: lb.origin, ca: lb.ca }) },
    close: { label: 'through nginx, HTTPS, a connection per request (the LB before keep-alive)', make: () => h1Client({ origin: lb.origin, ca: lb.ca, keepAlive: false, maxSockets: concurrency }) },
  } satisfies Record<string, { label: string; make: () => LbClient }>;
  type Name = keyof typeof targets;
  const results: Record<Name, Run[]> = { direct: [], h1: [], h2: [], close: [] };
  try {
    for (const t of Object.values(targets)) await loadOnce(t.make, concurrency, warmup, pids);
    // Interleaved: each round measures every target once, so drift on a shared machine hits all alike.
    for (let round = 0; round < runs; round++) {
      for (const [name, t] of Object.entries(targets) as Array<[Name, (typeof targets)[Name]]>) {
        const r = await loadOnce(t.make, concurrency, seconds, pids);
        log(`${variant.backend}, round ${round + 1}/${runs}, ${t.label}: ${r.rps.toFixed(0)} req/s, p99 ${r.p99.toFixed(1)} ms, ${r.errors} errors, ${r.handshakes} TLS handshakes, machine ${(r.machineBusy * 100).toFixed(0)}% busy`);
        results[name].push(r);
      }
    }
  } finally {
    await lb.stop();
    backend.stop();
  }

  const rps = (name: Name): number => median(results[name].map((r) => r.rps));
  const p99 = (name: Name): number => median(results[name].map((r) => r.p99));
  const detail = (name: Name): string => {
    const rs = results[name];
    const sum = (f: (r: Run) => number): number => rs.reduce((n, r) => n + f(r), 0);
    const cpu = (['client', 'nginx', 'backend'] as const).map((k) => `${k} ${median(rs.map((r) => r.cpu[k])).toFixed(3)}`).join(', ');
    return `${sum((r) => r.requests)} requests, ${sum((r) => r.errors)} errors, ${sum((r) => r.handshakes)} TLS handshakes; p50 ${median(rs.map((r) => r.p50)).toFixed(2)} ms; CPU s per 1000 requests: ${cpu}; machine ${(median(rs.map((r) => r.machineBusy)) * 100).toFixed(0)}% busy`;
  };
  const rpsSpread = (name: Name): string | undefined => (runs > 1 ? spread(results[name].map((r) => r.rps), 0) : undefined);
  const rpsName = (name: Name): string => `requests/s, ${targets[name].label}, ${variant.backend}`;
  const p99Name = (name: Name): string => `p99 latency, ${targets[name].label}, ${variant.backend}`;
  const goal = (name: Name): string => `goal: at least 0.8x straight to the backend with keep-alive, ${rps(name) / rps('direct') >= 0.8 ? 'met' : 'missed'}`;
  return [
    { name: rpsName('direct'), median: rps('direct'), unit: 'req/s', spread: rpsSpread('direct'), note: detail('direct') },
    ...(['h1', 'h2', 'close'] as const).map((name) => ({
      name: rpsName(name),
      median: rps(name),
      unit: 'req/s',
      spread: rpsSpread(name),
      baseline: rpsName('direct'),
      ratio: rps(name) / rps('direct'),
      note: `${name === 'close' ? '' : `${goal(name)}; `}${detail(name)}`,
    })),
    ...(Object.keys(targets) as Name[]).map((name) => ({
      name: p99Name(name),
      median: p99(name),
      unit: 'ms',
      ...(name === 'direct' ? {} : { baseline: p99Name('direct'), ratio: p99(name) / p99('direct') }),
    })),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = process.argv.indexOf('--backend');
  if (at >= 0) {
    const backend = await startBackend('bench', { cpuMs: Number(process.argv[at + 1] ?? 0) });
    process.stdout.write(`${backend.address}\n`);
    process.once('SIGTERM', () => process.exit(0));
  } else {
    const { table } = await import('./report');
    process.stdout.write(`${table(await benchLbLocal())}\n`);
  }
}
