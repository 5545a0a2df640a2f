// throughput benchmark: conversions per minute with one worker host and with two, each worker
// host held to one CPU by a CFS quota on its cgroup, so the figure measures the fleet's
// scaling, not the machine's spare cores. A batch of CAx-IF STEP uploads through the LB, timed
// from the first upload to the last model ready.
//
// Run alone: sudo node --import tsx bench/throughput.ts
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type FleetInfo, cadfleet, ensureFleet, fleetAgents, upload, waitReady } from './fleet';
import { type Row, type Section, median, spread } from './report';

const BATCH = Number(process.env.BENCH_THROUGHPUT_BATCH ?? 16);
const RUNS = Number(process.env.BENCH_THROUGHPUT_RUNS ?? 2);
const SAMPLES = ['as1-oc-214.stp', 'dm1-id-214.stp', 'io1-cm-214.stp', 'sg1-c5-214.stp'].map((f) => path.resolve('node_modules/occt-import-js/test/testfiles/cax-if', f));
const WORKERS = ['worker-1', 'worker-2'];

/** The CFS quota file of a host's cpu cgroup (cgroup v1 or v2). */
function quotaFile(host: string): { file: string; set: (cpus: number | null) => void } {
  const name = `${process.env.CADFLEET_LOCAL_FLEET ?? 'cf'}-${host}`;
  const v1 = `/sys/fs/cgroup/cpu/cadfleet/${name}/cpu.cfs_quota_us`;
  const v2 = `/sys/fs/cgroup/cadfleet/${name}/cpu.max`;
  if (fs.existsSync(v1)) return { file: v1, set: (cpus) => fs.writeFileSync(v1, cpus === null ? '-1' : String(Math.round(cpus * 100_000))) };
  if (fs.existsSync(v2)) return { file: v2, set: (cpus) => fs.writeFileSync(v2, cpus === null ? 'max 100000' : `${Math.round(cpus * 100_000)} 100000`) };
  throw new Error(`no cpu cgroup for ${name} (${v1} or ${v2}); is the fleet up?`);
}

async function batch(fleet: FleetInfo): Promise<number> {
  const agents = fleetAgents();
  const t0 = performance.now();
  const ids: string[] = [];
  // Fine quality: each conversion is CPU work of about a second, not dominated by the pipeline.
  for (let i = 0; i < BATCH; i++) ids.push(await upload(fleet, agents, SAMPLES[i % SAMPLES.length]!, 'fine'));
  await waitReady(fleet, agents, ids);
  const minutes = (performance.now() - t0) / 60_000;
  agents.https.destroy();
  return BATCH / minutes;
}

export async function benchThroughput(): Promise<Section> {
  const log = (line: string) => process.stderr.write(`bench throughput: ${line}\n`);
  const fleet = ensureFleet(log);
  const quotas = WORKERS.map(quotaFile);
  const rates: Record<'one' | 'two', number[]> = { one: [], two: [] };
  try {
    for (const q of quotas) q.set(1);
    log('warm-up batch on both workers');
    await batch(fleet);
    for (let run = 0; run < RUNS; run++) {
      cadfleet(['ssh', '--env', 'local', 'worker/2', '--', 'sudo', 'systemctl', 'stop', 'cadfleet-worker']);
      log(`run ${run + 1}: ${BATCH} conversions on worker-1 alone`);
      rates.one.push(await batch(fleet));
      cadfleet(['ssh', '--env', 'local', 'worker/2', '--', 'sudo', 'systemctl', 'start', 'cadfleet-worker']);
      await new Promise((r) => setTimeout(r, 3000));
      log(`run ${run + 1}: ${BATCH} conversions on both workers`);
      rates.two.push(await batch(fleet));
    }
  } finally {
    for (const q of quotas) q.set(null);
    cadfleet(['ssh', '--env', 'local', 'worker/2', '--', 'sudo', 'systemctl', 'start', 'cadfleet-worker']);
  }
  const one = median(rates.one);
  const two = median(rates.two);
  const rows: Row[] = [
    { name: 'conversions/min, one worker host (1 CPU)', median: one, unit: 'conv/min', spread: spread(rates.one, 1) },
    { name: 'conversions/min, two worker hosts (1 CPU each)', median: two, unit: 'conv/min', spread: spread(rates.two, 1), baseline: 'one worker host', ratio: two / one, note: 'goal: at least 1.8x' },
  ];
  return {
    title: `throughput: ${BATCH} CAx-IF STEP uploads (quality fine) through the LB, first upload to last ready (median of ${RUNS})`,
    rows,
    notes: [
      `Samples in turn: ${SAMPLES.map((s) => path.basename(s)).join(', ')}. Each worker host is held to one CPU (CFS quota on its cgroup); the api, data and LB hosts are not, and share the machine's cores with the workers.`,
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(JSON.stringify(await benchThroughput(), null, 2));
