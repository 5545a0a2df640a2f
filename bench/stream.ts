// Streaming benchmark: how soon a viewer sees geometry, how soon it has the whole model, and
// how many sessions one streamer process holds, on real local PostgreSQL, Redis and s3rver with
// the api, a worker and streamer processes (the test harness starts them).
//
//   time to first geometry / full model: from the client's POST /sessions to the first frame
//     decoded (meshopt, as the viewer does) and to the last one; warm = the streamer has the
//     model prepared (memory); cold = a fresh streamer fetches model.glb from S3 and cuts it.
//     Loopback shows the service's own latency; a simulated link (frames are processed when
//     they would have arrived at that rate; acks follow) shows what a viewer on a network sees.
//   sessions: clients on slow links (all sessions open at once), the streamer's resident memory.
//
// Run alone: node --import tsx bench/stream.ts
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MeshoptDecoder } from 'meshoptimizer';
import WebSocket from 'ws';
import { PROTOCOL_VERSION } from '../app/src/streamer/protocol';
import { type ApiClient, type Harness, ROOT, SAMPLES, apiClient, startHarness } from '../test/service/harness';
import { decodeGeometry } from '../test/streamer/client';
import { STREAM_ENV, type StreamerProcess, startStreamer } from '../test/streamer/streamers';
import { type Row, type Section, median, spread } from './report';

const PTEROSAUR = path.join(ROOT, 'node_modules/node-stl/test/test_data/Pterosaur_FDM.stl');

interface Timing {
  sessionMs: number;
  firstMs: number;
  fullMs: number;
  frames: number;
  bytes: number;
  node: string;
}

/** One session as a viewer runs it; `mbit` simulates the link (undefined: loopback as is). */
async function streamOnce(client: ApiClient, modelId: string, options: { mbit?: number; decode?: boolean; window?: number } = {}): Promise<Timing> {
  const t0 = performance.now();
  const res = await client.json<{ streamUrl: string; node: string; message?: string }>('POST', `/api/v1/models/${modelId}/sessions`, {
    body: '{}',
    headers: { 'content-type': 'application/json' },
  });
  if (res.status !== 201) throw new Error(`no session (${res.status}): ${res.body.message}`);
  const sessionMs = performance.now() - t0;
  const bytesPerMs = options.mbit ? (options.mbit * 1e6) / 8 / 1000 : Infinity;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(res.body.streamUrl, { perMessageDeflate: false });
    let processed = 0;
    let bytes = 0;
    let firstMs = 0;
    // The simulated link: a message is processed when its last byte would have arrived.
    let linkFree = 0;
    let queue = Promise.resolve();
    const arrive = (size: number, work: () => void): void => {
      const now = performance.now();
      linkFree = Math.max(now, linkFree) + size / bytesPerMs;
      const due = linkFree;
      queue = queue.then(async () => {
        const wait = due - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        work();
      });
    };
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, have: [], ...(options.window ? { window: options.window } : {}) })));
    ws.on('message', (data: Buffer, binary) => {
      if (!binary) {
        const m = JSON.parse(data.toString()) as { type: string; message?: string };
        if (m.type === 'error') reject(new Error(m.message));
        arrive(data.length, () => undefined);
        return;
      }
      arrive(data.length, () => {
        if (options.decode !== false) decodeGeometry(data);
        processed++;
        bytes += data.length;
        if (processed === 1) firstMs = performance.now() - t0;
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'ack', frames: processed }));
      });
    });
    ws.on('error', reject);
    ws.on('close', (code) => {
      void queue.then(() =>
        code === 1000 ? resolve({ sessionMs, firstMs, fullMs: performance.now() - t0, frames: processed, bytes, node: res.body.node }) : reject(new Error(`closed with ${code}`)),
      );
    });
  });
}

function rssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;

function pair(rows: Row[], label: string, runs: Timing[], note: string): void {
  const first = runs.map((r) => r.firstMs);
  const full = runs.map((r) => r.fullMs);
  const fullName = `full model: ${label}`;
  rows.push({ name: fullName, median: median(full), unit: 'ms', spread: runs.length > 1 ? spread(full, 1) : undefined, note });
  rows.push({ name: `first geometry: ${label}`, median: median(first), unit: 'ms', spread: runs.length > 1 ? spread(first, 1) : undefined, baseline: fullName, ratio: median(first) / median(full) });
}

export async function benchStream(options: { runs?: number; heldSessions?: number[] } = {}): Promise<Section> {
  const runs = options.runs ?? 7;
  const held = options.heldSessions ?? [250, 1000];
  await MeshoptDecoder.ready;
  const h: Harness = await startHarness('bench-stream', { env: { ...STREAM_ENV, CADFLEET_STREAM_MAX_SESSIONS: '2000' } });
  const streamers: StreamerProcess[] = [];
  try {
    const api = await h.start('api');
    await h.start('worker');
    const client = apiClient(api.url, await h.createKey('bench'));
    const models: Array<{ label: string; id: string; stats: { triangles: number; parts: number } }> = [];
    for (const [label, file] of [
      ['as1-oc-214.stp (CAx-IF assembly, 432 KB)', SAMPLES.assembly],
      ['Pterosaur_FDM.stl (node-stl, 10 MB)', PTEROSAUR],
    ] as const) {
      const up = await client.upload(file);
      const ready = await client.waitForState(String(up.body.id), ['ready', 'failed'], { timeoutMs: 180_000 });
      if (ready.state !== 'ready') throw new Error(`${file} did not convert: ${String(ready.error)}`);
      models.push({ label, id: String(up.body.id), stats: ready.stats as { triangles: number; parts: number } });
    }

    const rows: Row[] = [];
    const notes: string[] = [];
    // Cold: one fresh streamer per model, first session after start (S3 fetch + cutting).
    const cold: Timing[] = [];
    for (const m of models) {
      const s = await startStreamer(h, `bench-cold-${models.indexOf(m)}`, {}, { bundle: true });
      cold.push(await streamOnce(client, m.id));
      await s.stop();
    }
    // The bundle, as releases run it (tsx alone adds about 70 MB of resident memory).
    const streamer = await startStreamer(h, 'bench-streamer', {}, { bundle: true });
    streamers.push(streamer);
    for (const [i, m] of models.entries()) {
      await streamOnce(client, m.id); // prepares the model on this streamer
      const loop: Timing[] = [];
      for (let r = 0; r < runs; r++) loop.push(await streamOnce(client, m.id));
      const short = m.label.split(' ')[0]!;
      pair(rows, `${short}, loopback, warm`, loop, `${loop[0]!.frames} frames, ${round(loop[0]!.bytes / 1024)} KB; POST /sessions ${round(median(loop.map((t) => t.sessionMs)))} ms`);
      for (const mbit of [50, 10]) {
        const link: Timing[] = [];
        for (let r = 0; r < Math.min(3, runs); r++) link.push(await streamOnce(client, m.id, { mbit }));
        pair(rows, `${short}, ${mbit} Mbit/s link, warm`, link, 'simulated link');
      }
      pair(rows, `${short}, loopback, cold`, [cold[i]!], 'fresh streamer: S3 fetch and cutting included; one run');
      notes.push(`${m.label}: ${m.stats.parts} parts, ${m.stats.triangles} triangles.`);
    }

    // Sessions one streamer holds: every client on a 0.25 Mbit/s link (256 KiB window), so all
    // stay open together; measured after 8 s, then the streamer is replaced for the next round.
    const ptero = models[1]!;
    let current = streamer;
    for (const n of held) {
      await streamOnce(client, ptero.id); // prepared and in memory
      const idle = rssMb(current.pid);
      let peak = idle;
      let peakSessions = 0;
      let failed = 0;
      let stopping = false;
      const sessions = Array.from({ length: n }, () =>
        streamOnce(client, ptero.id, { mbit: 0.25, decode: false, window: 256 * 1024 }).then(
          () => undefined,
          () => void (stopping || failed++),
        ),
      );
      const watch = setInterval(() => {
        peak = Math.max(peak, rssMb(current.pid));
        void current.health().then((hz) => (peakSessions = Math.max(peakSessions, hz.sessions)), () => undefined);
      }, 250);
      await new Promise((r) => setTimeout(r, 8000));
      clearInterval(watch);
      rows.push({
        name: `sessions held at once by one streamer (Pterosaur, 0.25 Mbit/s clients, ${n} opened)`,
        median: peakSessions,
        unit: 'sessions',
        note: `streamer RSS ${round(idle)} MB idle (model in memory) -> ${round(peak)} MB peak, ${round(((peak - idle) * 1024) / Math.max(1, peakSessions))} KB per session; ${failed} failed`,
      });
      stopping = true;
      await current.stop();
      await Promise.all(sessions);
      streamers.splice(streamers.indexOf(current), 1);
      current = await startStreamer(h, `bench-streamer-${n}`, {}, { bundle: true });
      streamers.push(current);
    }
    notes.push(
      'Times run from the client\'s POST /api/v1/models/:id/sessions to the first frame decoded and to the last; the client decodes every frame (meshopt) and acknowledges it, as the viewer does. A simulated link processes each message when its last byte would have arrived at that rate; the acknowledgements follow, so the streamer\'s window paces it.',
      `api, worker and streamers as child processes (tsx) on one machine with local PostgreSQL, Redis and s3rver; CADFLEET_STREAM_CHUNK_TRIANGLES 8192, window 1 MiB.`,
    );
    return { title: 'stream: time to first geometry and to the full model; sessions per streamer', rows, notes };
  } finally {
    await Promise.all(streamers.map((s) => s.stop().catch(() => undefined)));
    await h.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table } = await import('./report');
  process.stdout.write(`${table(await benchStream())}\n`);
  process.exit(0);
}
