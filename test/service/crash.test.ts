// Losing a worker mid-job loses no job: another worker process takes it over once the dead
// worker's lock expires, and the conversion completes exactly once. A converter that crashes
// fails the job with a readable message and leaves the worker running.
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiClient, type AppProcess, type Harness, ROOT, SAMPLES, apiClient, eventually, sleep, startHarness } from './harness';

// An operator-style converter command: ours, after a pause that makes "mid-job" a wide window.
const SLOW_CONVERTER = `sh -c 'sleep 2; exec "$0" ${path.join(ROOT, 'bin/cadfleet-convert.js')} --input "$1" --output-dir "$2" --quality "$3"' ${process.execPath} {input} {outputDir} {quality}`;

let h: Harness;
let api: AppProcess;
let client: ApiClient;

beforeAll(async () => {
  h = await startHarness('crash', { env: { CADFLEET_CONVERTER_COMMAND: SLOW_CONVERTER } });
  api = await h.start('api');
  client = apiClient(api.url, await h.createKey('acme'));
});

afterAll(async () => {
  await h?.stop();
});

interface ModelRow {
  state: string;
  worker_node: string | null;
}

describe('worker failures', () => {
  it('completes a job exactly once after its worker is killed with SIGKILL mid-conversion', async () => {
    const workers = new Map<string, AppProcess>();
    for (const id of ['worker-a', 'worker-b']) workers.set(id, await h.start('worker', { nodeId: id }));

    const upload = await client.upload(SAMPLES.cube);
    expect(upload.status).toBe(201);
    const id = String(upload.body.id);

    // Wait until a worker holds the job and is converting, then kill its whole process group
    // (worker and converter) the way a host that dies would.
    const holder = await eventually(async () => {
      const { rows } = await h.db.query<ModelRow>('SELECT state, worker_node FROM models WHERE id = $1', [id]);
      return rows[0]?.state === 'converting' && rows[0].worker_node ? rows[0].worker_node : undefined;
    }, 'a worker to start converting', 20_000);
    const victim = workers.get(holder)!;
    const survivorId = holder === 'worker-a' ? 'worker-b' : 'worker-a';
    const survivor = workers.get(survivorId)!;
    await sleep(300); // well inside the converter's 2 s pause
    victim.killGroup('SIGKILL');
    expect((await victim.exited).signal).toBe('SIGKILL');

    const ready = await client.waitForState(id, ['ready', 'failed'], { timeoutMs: 60_000 });
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
    expect(ready.workerHost).toBe(os.hostname());

    const glb = await client.request('GET', `/api/v1/models/${id}/files/model.glb`);
    expect(glb.status).toBe(200);
    expect((await glb.arrayBuffer()).byteLength).toBeGreaterThan(100);

    // Once: the dead worker's run is recorded as lost; exactly one run, the survivor's, is ready.
    const attempts = await h.db.query<{ worker_node: string; outcome: string | null; finished_at: Date | null }>(
      'SELECT worker_node, outcome, finished_at FROM conversion_attempts WHERE model_id = $1 ORDER BY id',
      [id],
    );
    expect(attempts.rows.map((r) => [r.worker_node, r.outcome])).toEqual([
      [holder, 'lost'],
      [survivorId, 'ready'],
    ]);
    const model = await h.db.query<ModelRow>('SELECT state, worker_node FROM models WHERE id = $1', [id]);
    expect(model.rows[0]).toEqual({ state: 'ready', worker_node: survivorId });
    expect(survivor.logLines((l) => l.msg === 'conversion ready' && l.model === id)).toHaveLength(1);
    expect(victim.logLines((l) => l.msg === 'conversion ready')).toHaveLength(0);

    // And it stays done: no further run picks it up after more stall checks.
    await sleep(2500);
    const later = await h.db.query('SELECT count(*)::int AS n FROM conversion_attempts WHERE model_id = $1', [id]);
    expect(later.rows[0].n).toBe(2);
    await survivor.stop();
  });

  it('fails a job whose converter crashes, with a readable message, and keeps the worker serving', async () => {
    const crashing = await h.start('worker', {
      nodeId: 'worker-crashing',
      // The converter dies by SIGSEGV on every run; after the api's CADFLEET_JOB_ATTEMPTS (3) the job fails.
      env: { CADFLEET_CONVERTER_COMMAND: `sh -c 'kill -SEGV $$' {input}` },
    });
    const upload = await client.upload(SAMPLES.cube);
    const failed = await client.waitForState(String(upload.body.id), ['ready', 'failed'], { timeoutMs: 30_000 });
    expect(failed.state).toBe('failed');
    expect(String(failed.error)).toMatch(/after 3 tries: crashed: .*(SIGSEGV|without writing result\.json)/);
    const attempts = await h.db.query('SELECT outcome FROM conversion_attempts WHERE model_id = $1 ORDER BY id', [upload.body.id]);
    expect(attempts.rows.map((r: { outcome: string }) => r.outcome)).toEqual(['retry', 'retry', 'failed']);

    // The worker process is still up and keeps taking jobs.
    expect(crashing.alive()).toBe(true);
    expect(crashing.logLines((l) => l.level === 'fatal')).toHaveLength(0);
    const second = await client.upload(SAMPLES.cube);
    expect((await client.waitForState(String(second.body.id), ['failed'], { timeoutMs: 30_000 })).state).toBe('failed');
    expect(crashing.alive()).toBe(true);
    await crashing.stop();

    // A healthy worker then converts new uploads as usual.
    await h.start('worker', { nodeId: 'worker-c', env: { CADFLEET_CONVERTER_COMMAND: '' } });
    const next = await client.upload(SAMPLES.cube);
    const ready = await client.waitForState(String(next.body.id), ['ready', 'failed']);
    expect(ready.state, JSON.stringify(ready)).toBe('ready');
  });
});
