// api benchmark: GET /api/v1/models through the nginx LB (HTTPS) vs straight to one api host
// (HTTP on its port, from this machine, as the LB reaches it), same client, same concurrency,
// each run bounded in time. The LB closes client connections after each request
// (keepalive_timeout 0: a reload must never cut a kept-alive request), so every LB request
// pays a TLS handshake (sessions resumed); the direct runs are shown with keep-alive and with
// `Connection: close`, so the like-for-like ratio is visible.
//
// Run alone: sudo node --import tsx bench/api.ts
import { fileURLToPath } from 'node:url';
import { type FleetInfo, call, ensureFleet, fleetAgents } from './fleet';
import { type Row, type Section, median, spread } from './report';

const CONCURRENCY = Number(process.env.BENCH_API_CONCURRENCY ?? 8);
const SECONDS = Number(process.env.BENCH_API_SECONDS ?? 8);
const RUNS = Number(process.env.BENCH_API_RUNS ?? 3);

interface Run {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** A closed loop of CONCURRENCY clients for `seconds`; every non-200 or error is counted. */
async function loadOnce(url: string, fleet: FleetInfo, keepAlive: boolean, seconds: number): Promise<Run> {
  const agents = fleetAgents(keepAlive);
  const headers: Record<string, string> = { authorization: `Bearer ${fleet.key}`, ...(keepAlive ? {} : { connection: 'close' }) };
  const latencies: number[] = [];
  let errors = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const r = await call(url, { headers, agents });
          if (r.status !== 200) errors++;
        } catch {
          errors++;
        }
        latencies.push(performance.now() - t0);
      }
    }),
  );
  agents.https.destroy();
  agents.http.destroy();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

export async function benchApi(): Promise<Section> {
  const log = (line: string) => process.stderr.write(`bench api: ${line}\n`);
  const fleet = ensureFleet(log);
  const targets: Array<{ name: string; url: string; keepAlive: boolean }> = [
    { name: 'straight to api-1 (HTTP, keep-alive)', url: `http://${fleet.hosts['api-1']}:8080/api/v1/models?limit=20`, keepAlive: true },
    { name: 'straight to api-1 (HTTP, a connection per request)', url: `http://${fleet.hosts['api-1']}:8080/api/v1/models?limit=20`, keepAlive: false },
    { name: 'through the LB (HTTPS, 2 api hosts, a connection per request)', url: `https://${fleet.lb}/api/v1/models?limit=20`, keepAlive: false },
  ];
  const results = new Map<string, Run[]>();
  for (const t of targets) {
    log(`${t.name}: warm-up, then ${RUNS} x ${SECONDS} s at ${CONCURRENCY} clients`);
    await loadOnce(t.url, fleet, t.keepAlive, 2);
    const runs: Run[] = [];
    for (let i = 0; i < RUNS; i++) runs.push(await loadOnce(t.url, fleet, t.keepAlive, SECONDS));
    results.set(t.name, runs);
  }
  const rows: Row[] = [];
  const [direct, directClose, viaLb] = targets.map((t) => results.get(t.name)!);
  const rps = (runs: Run[]) => median(runs.map((r) => r.rps));
  for (const [t, runs] of targets.map((t) => [t, results.get(t.name)!] as const)) {
    const errors = runs.reduce((n, r) => n + r.errors, 0);
    rows.push({
      name: `requests/s, ${t.name}`,
      median: rps(runs),
      unit: 'req/s',
      spread: spread(runs.map((r) => r.rps), 0),
      ...(runs === viaLb ? { baseline: targets[0]!.name, ratio: rps(runs) / rps(direct!) } : {}),
      note: `p50 ${median(runs.map((r) => r.p50)).toFixed(1)} ms, p99 ${median(runs.map((r) => r.p99)).toFixed(1)} ms, ${errors} errors`,
    });
  }
  rows.push({ name: 'requests/s through the LB vs straight, both a connection per request', median: rps(viaLb!) / rps(directClose!), unit: 'x', note: 'like for like (goal: at least 0.8x)' });
  return {
    title: `api: GET /api/v1/models through the LB vs straight to one api host (${CONCURRENCY} clients, ${RUNS} x ${SECONDS} s)`,
    rows,
    notes: [
      'Load from this machine to the local fleet (8 hosts on the same 2 cores as the client); every request authenticated with an API key and read from PostgreSQL.',
      'The LB answers over TLS and closes each client connection (keepalive_timeout 0), so each LB request is a new TLS connection with session resumption.',
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(JSON.stringify(await benchApi(), null, 2));
