// Pipeline benchmark: the service's own cost around a conversion, on real local PostgreSQL,
// Redis and S3 (the test harness starts them) with the api and a worker as child processes.
//
//   overhead    = (ready committed - upload accepted) - converter seconds, from PostgreSQL's
//                 own timestamps (created_at, finished_at) and the converter's result stats
//   throughput  = conversions per minute for a burst of uploads on one worker
//
// Run alone: node --import tsx bench/pipeline.ts
import { fileURLToPath } from 'node:url';
import { SAMPLES, apiClient, startHarness } from '../test/service/harness';

export interface BenchRow {
  name: string;
  median: number;
  unit: string;
  spread?: string;
  note?: string;
  baseline?: string;
  ratio?: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const spread = (xs: number[], digits = 1): string => `${round(Math.min(...xs), digits)}..${round(Math.max(...xs), digits)}`;

export async function benchPipeline(options: { sequential?: number; burst?: number; concurrency?: number; reuseRounds?: number } = {}): Promise<{ title: string; rows: BenchRow[]; notes: string[] }> {
  const sequential = options.sequential ?? 15;
  const reuseRounds = options.reuseRounds ?? 5;
  const burst = options.burst ?? 16;
  const concurrency = options.concurrency ?? 2;
  const h = await startHarness('bench', {
    env: { CADFLEET_WORKER_CONCURRENCY: String(concurrency), CADFLEET_LOG_LEVEL: 'info', CADFLEET_JOB_LOCK_MS: '30000', CADFLEET_STALLED_INTERVAL_MS: '30000' },
  });
  try {
    const api = await h.start('api');
    await h.start('worker');
    const client = apiClient(api.url, await h.createKey('bench'));
    const modelRow = async (id: string) =>
      (
        await h.db.query<{ ms: number; seconds: number }>(
          `SELECT extract(epoch FROM finished_at - created_at) * 1000 AS ms, (stats->>'seconds')::float AS seconds FROM models WHERE id = $1`,
          [id],
        )
      ).rows[0]!;

    // Warm-up: the first job starts the warm converter's engines.
    for (const sample of [SAMPLES.cube, SAMPLES.assembly]) {
      const up = await client.upload(sample);
      await client.waitForState(String(up.body.id), ['ready']);
    }

    // One at a time: the service's overhead around each conversion.
    const overhead: number[] = [];
    const accept: number[] = [];
    const observed: number[] = [];
    const converter: number[] = [];
    for (let i = 0; i < sequential; i++) {
      const t0 = performance.now();
      const up = await client.upload(SAMPLES.cube);
      const t1 = performance.now();
      await client.waitForState(String(up.body.id), ['ready']);
      observed.push(performance.now() - t1);
      accept.push(t1 - t0);
      const row = await modelRow(String(up.body.id));
      converter.push(row.seconds * 1000);
      overhead.push(Number(row.ms) - row.seconds * 1000);
    }

    // A burst: conversions per minute with the queue full.
    const started = performance.now();
    const ids = await Promise.all(Array.from({ length: burst }, () => client.upload(SAMPLES.assembly).then((r) => String(r.body.id))));
    await Promise.all(ids.map((id) => client.waitForState(id, ['ready'], { timeoutMs: 300_000 })));
    const minutes = (performance.now() - started) / 60_000;
    const burstConverter = await Promise.all(ids.map(async (id) => (await modelRow(id)).seconds));

    // Reuse by content: the same bytes again, as a CI pipeline or a PDM sync sends them. Fresh:
    // reuse=false, upload to ready as the client sees it; reused: the upload's own answer, ready.
    const fresh: number[] = [];
    const reused: number[] = [];
    for (let i = 0; i < reuseRounds; i++) {
      const t0 = performance.now();
      const up = await client.upload(SAMPLES.assembly);
      await client.waitForState(String(up.body.id), ['ready']);
      fresh.push(performance.now() - t0);
      const t1 = performance.now();
      const again = await client.upload(SAMPLES.assembly, { reuse: true });
      reused.push(performance.now() - t1);
      if (again.body.state !== 'ready' || !again.body.reusedFrom) throw new Error(`the same bytes were not reused: ${JSON.stringify(again.body)}`);
    }
    const freshName = 'same file again, converted afresh: upload -> ready (as1-oc-214.stp, 432 KB, reuse=false)';

    return {
      title: 'Pipeline: service orchestration around the converter',
      notes: [
        'api and worker as child processes (tsx), local PostgreSQL 15, Redis 7 and s3rver; warm converter pool.',
        'Overhead = PostgreSQL finished_at - created_at (row written when the upload is accepted) minus the converter\'s own seconds.',
      ],
      rows: [
        {
          name: 'pipeline overhead: accepted -> ready minus converter time (cube.stp)',
          median: round(median(overhead)),
          unit: 'ms',
          spread: spread(overhead),
          note: `${sequential} sequential jobs; PostgreSQL timestamps; converter median ${round(median(converter))} ms (goal: overhead < 150 ms)`,
        },
        { name: 'upload request, multipart (cube.stp, 8 KB)', median: round(median(accept)), unit: 'ms', spread: spread(accept) },
        { name: 'client-observed accepted -> ready (cube.stp, 25 ms polling)', median: round(median(observed)), unit: 'ms', spread: spread(observed) },
        {
          name: `conversions per minute (as1-oc-214.stp, 1 worker, concurrency ${concurrency})`,
          median: round(burst / minutes),
          unit: 'conv/min',
          note: `${burst} uploads at once; converter median ${round(median(burstConverter), 2)} s per job`,
        },
        { name: freshName, median: round(median(fresh)), unit: 'ms', spread: spread(fresh), note: `${reuseRounds} rounds, 25 ms polling` },
        {
          name: 'same file again, reused: upload -> ready (the 201 is the ready model)',
          median: round(median(reused)),
          unit: 'ms',
          spread: spread(reused),
          baseline: freshName,
          ratio: median(reused) / median(fresh),
          note: 'SHA-256 taken while the upload streams to S3; no job, no converter',
        },
      ],
    };
  } finally {
    await h.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { rows } = await benchPipeline();
  for (const r of rows) console.log(`${r.name}: ${r.median} ${r.unit}${r.spread ? ` (${r.spread})` : ''}${r.note ? ` — ${r.note}` : ''}`);
}
