// The reliability and security suite (issue 9), run on the fleet suite's one fleet, after the
// upgrade scenarios: host faults (a worker, a streamer and the LB host pulled out, Redis and
// PostgreSQL restarted under load), a restore drill, hostile input, access, and load. Each
// scenario is bounded in time and count, and sends traffic only to this machine and the fleet's
// addresses. The figures go to docs/reliability.md, written by the last test when all passed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis as IORedis } from 'ioredis';
import { expect, it, onTestFinished } from 'vitest';
import { CONVERSION_QUEUE } from '../../app/src/shared/queue';
import { converterScaling } from '../../bench/converter-scaling';
import { signStreamToken, type StreamClaims } from '../../app/src/shared/stream-token';
import { VIEWER_CSP } from '../../app/src/api/viewer-static';
import { tempDir } from '../helpers/convert';
import { makeZip } from '../helpers/zip';
import { cax, stlSample } from '../helpers/samples';
import { openStream } from '../streamer/client';
import { NAME, cli, e2e, fleet, id, ipOf, killHost, lbAddress, root, ssh } from './context';
import { report, writeReport } from './reliability-report';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const caPem = (): Buffer => fs.readFileSync(path.join(root, 'pki/ca.crt'));
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const SCENARIOS = ['worker', 'streamer', 'data', 'lb', 'restore', 'hostile', 'access', 'load', 'throughput'] as const;

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The JSON body, or {} */
  json: Record<string, unknown> & { code?: string; message?: string; id?: string; state?: string };
  ms: number;
}

/** HTTPS through the LB as a client outside the fleet (the fleet CA); status 0 for a connection error. */
export function request(method: string, urlPath: string, options: { key?: string | null; body?: Buffer | string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Answer> {
  const started = performance.now();
  const key = options.key === undefined ? e2e.key : options.key;
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  return new Promise((resolve) => {
    const req = https.request(
      {
        host: lbAddress(),
        port: 443,
        path: urlPath,
        method,
        ca: caPem(),
        agent: false,
        timeout: options.timeoutMs ?? 60_000,
        headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(body ? { 'content-length': String(body.length) } : {}), ...options.headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => {
          const all = Buffer.concat(chunks);
          let json: Answer['json'] = {};
          try {
            json = JSON.parse(all.toString('utf8')) as Answer['json'];
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: all, json, ms: performance.now() - started });
        });
        res.on('error', () => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), json: {}, ms: performance.now() - started }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, headers: {}, body: Buffer.from(err.message), json: {}, ms: performance.now() - started }));
    req.end(body);
  });
}

/** A multipart body with one file; the name goes out as raw bytes (latin1), so any byte can be sent. */
function multipart(name: string | Buffer, content: Buffer, extraPartHeaders = ''): { body: Buffer; type: string } {
  const boundary = 'cadfleetRel7MA4YWxk';
  const head = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="`),
    typeof name === 'string' ? Buffer.from(name, 'utf8') : name,
    Buffer.from(`"\r\n${extraPartHeaders}Content-Type: application/octet-stream\r\n\r\n`, 'latin1'),
  ]);
  return { body: Buffer.concat([head, content, Buffer.from(`\r\n--${boundary}--\r\n`)]), type: `multipart/form-data; boundary=${boundary}` };
}

/** An upload through the LB; converted afresh (reuse=false) unless `reuse`: the scenarios count conversions. */
export const upload = (name: string | Buffer, content: Buffer, options: { key?: string | null; query?: string; extraPartHeaders?: string; reuse?: boolean } = {}): Promise<Answer> => {
  const { body, type } = multipart(name, content, options.extraPartHeaders);
  const query = options.reuse ? (options.query ?? '') : `${options.query ? `${options.query}&` : '?'}reuse=false`;
  return request('POST', `/api/v1/models${query}`, { key: options.key, body, headers: { 'content-type': type } });
};

interface ModelJson {
  id: string;
  state: string;
  errorCode?: string;
  error?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  workerHost?: string;
  stats?: { triangles: number; parts: number; seconds: number };
  name: string;
}

/** Waits until every model is ready or failed (or `seconds` pass); returns the last view of each. */
export async function settle(ids: string[], limitSeconds: number, key = e2e.key): Promise<Map<string, ModelJson>> {
  const last = new Map<string, ModelJson>();
  const deadline = Date.now() + limitSeconds * 1000;
  let open = [...ids];
  while (open.length && Date.now() < deadline) {
    for (const modelId of open) {
      const r = await request('GET', `/api/v1/models/${modelId}`, { key });
      if (r.status === 200) last.set(modelId, r.json as unknown as ModelJson);
    }
    open = open.filter((m) => !['ready', 'failed'].includes(last.get(m)?.state ?? ''));
    if (open.length) await sleep(1000);
  }
  return last;
}

export async function until(what: string, check: () => boolean | Promise<boolean>, limitSeconds: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < limitSeconds * 1000) {
    if (await check()) return Date.now() - started;
    await sleep(500);
  }
  expect(await check(), `${what} (waited ${limitSeconds} s)`).toBe(true);
  return Date.now() - started;
}

/** A child process (a load helper) and its exit, killed if it outlives `limitSeconds`. */
function child(argv: string[], env: Record<string, string>, limitSeconds: number): { proc: ChildProcess; exited: Promise<void> } {
  const proc = spawn(process.execPath, argv, { env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(root, 'pki/ca.crt'), LB_URL: `https://${lbAddress()}`, API_KEY: e2e.key, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<void>((resolve) => {
    const timer = setTimeout(() => proc.kill('SIGKILL'), limitSeconds * 1000);
    proc.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return { proc, exited };
}

interface LoadResult {
  requests: number;
  failures: number;
  byStatus: Record<string, number>;
  errors: string[];
  uploads: string[];
  missingRetryAfter: number;
  codes: Record<string, number>;
  byKind: Record<string, { requests: number; byStatus: Record<string, number>; latencyMs: { p50: number; p90: number; p99: number; max: number } }>;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}
interface StreamResult {
  sessions: number;
  resumes: number;
  failures: number;
  mismatches: number;
  closes: Record<string, number>;
  byStatus: Record<string, number>;
  errors: string[];
}

const apiLoad = (work: string, env: Record<string, string>, limitSeconds: number) =>
  child([path.resolve('test/helpers/load.mjs')], { STOP_FILE: path.join(work, 'stop'), OUT_FILE: path.join(work, 'load.json'), UPLOAD_FILE: stlSample('box_2x3x4.stl'), ...env }, limitSeconds);
const streamLoad = (work: string, env: Record<string, string>, limitSeconds: number) =>
  child(['--import', 'tsx', path.resolve('test/helpers/stream-load.ts')], { STOP_FILE: path.join(work, 'stop'), OUT_FILE: path.join(work, 'streams.json'), MODEL_ID: e2e.modelId, ...env }, limitSeconds);
const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;

/** systemd's restart count and main pid of the api and worker units: a process that died shows in either. */
function processes(): Record<string, string> {
  const units: Array<[string, string]> = [
    ['api-1', 'cadfleet-api'],
    ['api-2', 'cadfleet-api'],
    ['worker-1', 'cadfleet-worker'],
    ['worker-2', 'cadfleet-worker'],
  ];
  return Object.fromEntries(units.map(([host, unit]) => [`${host} ${unit}`, ssh(host, 'systemctl', 'show', '-p', 'NRestarts', '-p', 'MainPID', unit).out.split('\n').sort().join(' ')]));
}

/** Streaming sessions each streamer holds now (the registry, through /status). */
async function streamerSessions(): Promise<Record<string, number>> {
  const r = await request('GET', '/status?format=json');
  const nodes = (r.json as unknown as { nodes?: Array<{ id: string; role: string; extra: Record<string, string> }> }).nodes ?? [];
  return Object.fromEntries(nodes.filter((n) => n.role === 'streamer').map((n) => [n.id, Number(n.extra.sessions ?? 0)]));
}

const routedStreamers = (): string => ssh('lb', 'cat', '/etc/nginx/cadfleet/streamers.map').out;
const routedApis = (): string => ssh('lb', 'cat', '/etc/nginx/cadfleet/api-upstream.conf').out;
export const fullyRouted = (): boolean => {
  const map = routedStreamers();
  const apis = routedApis();
  return ['streamer-1', 'streamer-2'].every((h) => map.includes(`${id(h)} ${ipOf(h)}:8090;`)) && ['api-1', 'api-2'].every((h) => apis.includes(`${ipOf(h)}:8080`));
};

function secrets(): { postgresPassword: string; streamTokenSecret: string; redisPassword: string } {
  return JSON.parse(fs.readFileSync(path.join(root, 'secrets.json'), 'utf8')) as { postgresPassword: string; streamTokenSecret: string; redisPassword: string };
}

/** psql from this machine (the operator's), as the deploy test does: TLS checked against the fleet CA. */
export function psql(db: string, args: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync('psql', [`host=${ipOf('data')} dbname=${db} user=cadfleet sslmode=verify-full sslrootcert=${path.join(root, 'pki/ca.crt')}`, '-v', 'ON_ERROR_STOP=1', ...args], {
    encoding: 'utf8',
    input,
    env: { ...process.env, PGPASSWORD: secrets().postgresPassword },
    maxBuffer: 256 * 1024 * 1024,
  });
  return { code: r.status ?? 255, out: r.stdout ?? '', err: r.stderr ?? '' };
}

/** The data host's S3 server, as the services reach it (path style, the fleet CA). */
function s3(): S3Client {
  return new S3Client({
    endpoint: `https://${ipOf('data')}:9000`,
    forcePathStyle: true,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpsAgent: new https.Agent({ ca: caPem() }) },
  });
}

async function listKeys(client: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) if (o.Key) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** Every stored upload has its model (or its presigned upload) row: nothing half-made. */
async function orphanUploads(): Promise<string[]> {
  const client = s3();
  try {
    const keys = await listKeys(client, 'cadfleet-uploads', 'uploads/');
    const rows = psql('cadfleet', ['-tAc', 'SELECT id FROM models UNION SELECT id FROM uploads']);
    expect(rows.code, rows.err).toBe(0);
    const known = new Set(rows.out.split('\n').map((l) => l.trim()).filter(Boolean));
    return keys.filter((k) => !known.has(k.split('/')[2] ?? ''));
  } finally {
    client.destroy();
  }
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Follows the counts of uploads accepted during faults and load, for the "nothing lost" line. */
function keep(states: Map<string, ModelJson>, ids: string[]): void {
  report.kept.accepted += ids.length;
  for (const modelId of ids) {
    const s = states.get(modelId)?.state;
    if (s === 'ready') report.kept.ready++;
    else if (s === 'failed') report.kept.failed++;
    else report.kept.lost++;
  }
}

/** A session read like a viewer on a slow machine: frames acknowledged every `ackMs`, a small window. */
/**
 * Resumes a session of the e2e model through the LB with the parts the viewer holds, as the
 * viewer does, and checks that exactly the missing parts come and complete it.
 */
export async function resumeThroughLb(sessionId: string, have: string[]): Promise<ReturnType<typeof openStream>> {
  let resumed: Answer | undefined;
  await until('the api resuming the session through the LB', async () => {
    resumed = await request('POST', `/api/v1/models/${e2e.modelId}/sessions`, { body: JSON.stringify({ resume: sessionId }), headers: { 'content-type': 'application/json' } });
    return resumed.status === 200;
  }, 60);
  const rest = openStream(`wss://${lbAddress()}${(resumed!.json as unknown as { streamUrl: string }).streamUrl}`, { ca: caPem(), have });
  expect(await rest.closed).toEqual({ code: 1000, reason: 'complete' });
  expect(rest.manifest!.sending.sort()).toEqual(rest.manifest!.order.filter((p) => !have.includes(p)).sort());
  expect([...have, ...rest.completeParts()].sort()).toEqual([...rest.manifest!.order].sort());
  return rest;
}

export function slowStream(url: string, have: string[], ackMs: number) {
  let processed = 0;
  let nextAt = 0;
  return openStream(`wss://${lbAddress()}${url}`, {
    ca: caPem(),
    have,
    window: 16 * 1024,
    autoAck: false,
    onFrame: (_f, c) => {
      nextAt = Math.max(Date.now(), nextAt) + ackMs;
      setTimeout(() => {
        processed++;
        if (c.ws.readyState === c.ws.OPEN) c.ws.send(JSON.stringify({ type: 'ack', frames: processed }));
      }, nextAt - Date.now());
    },
  });
}

/** An upload as a well-behaved client sends it: a 429 (the LB's per-address limits) is tried again a second later. */
async function uploadRetrying(name: string, content: Buffer, query?: string): Promise<Answer> {
  for (let attempt = 0; ; attempt++) {
    const a = await upload(name, content, { query });
    if (a.status !== 429 || attempt === 10) return a;
    await sleep(1000);
  }
}

/** Uploads six at a time: the LB admits 8 uploads in progress per address (nginx_lb_upload_connections). */
async function uploadAll(files: Array<{ name: string; content: Buffer }>, query?: string): Promise<Answer[]> {
  const answers: Answer[] = [];
  for (let i = 0; i < files.length; i += 6) answers.push(...(await Promise.all(files.slice(i, i + 6).map((f) => uploadRetrying(f.name, f.content, query)))));
  return answers;
}

export function reliabilityScenarios(): void {
  it('loses no conversion when a worker host dies in the middle of a batch of 50: each ends ready (or failed with its reason), converted once, and the batch ends once', async () => {
    const step = fs.readFileSync(cax('as1-oc-214.stp'));
    const files = Array.from({ length: 50 }, (_, i) => {
      if (i === 7) return { name: 'truncated.stp', content: step.subarray(0, step.length >> 1), bad: true };
      if (i === 13) return { name: 'picture.stp', content: Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(4096, 7)]), bad: true };
      const sample = i % 2 ? 'as1-oc-214.stp' : 'dm1-oc-214.stp';
      return { name: `batch-${i}-${sample}`, content: fs.readFileSync(cax(sample)), bad: false };
    });
    // A batch (POST /api/v1/batches): its models wait until it starts, then all are queued at once.
    const batch = await request('POST', '/api/v1/batches', { body: JSON.stringify({ name: 'worker-kill' }), headers: { 'content-type': 'application/json' } });
    expect(batch.status, batch.body.toString()).toBe(201);
    const batchId = String(batch.json.id);
    const answers = await uploadAll(files, `?batch=${batchId}`);
    expect(answers.map((a) => a.status), answers.map((a) => a.body.toString().slice(0, 200)).join('\n')).toEqual(files.map(() => 201));
    const ids = answers.map((a) => a.json.id!);
    expect((await request('POST', `/api/v1/batches/${batchId}/start`)).json.state).toBe('started');
    // Pull the plug on worker-1 while the registry says it is converting.
    let busy = false;
    for (let i = 0; i < 120 && !busy; i++) {
      const r = await request('GET', '/status?format=json');
      const nodes = (r.json as unknown as { nodes?: Array<{ id: string; extra: Record<string, string> }> }).nodes ?? [];
      busy = Number(nodes.find((n) => n.id === id('worker-1'))?.extra.activeJobs ?? 0) > 0;
      if (!busy) await sleep(250);
    }
    expect(busy, 'worker-1 converting a job of the batch').toBe(true);
    const killedAt = Date.now();
    onTestFinished(async () => void (await cli('local', 'up')));
    await killHost('worker-1');
    const states = await settle(ids, 300);
    const took = Date.now() - killedAt;
    keep(states, ids);
    // One status for the batch, and one batch.ended event (the trigger ends it once).
    await until('the batch ending', async () => (await request('GET', `/api/v1/batches/${batchId}`)).json.state === 'ended', 60);
    expect((await request('GET', `/api/v1/batches/${batchId}`)).json).toMatchObject({ total: 50, counts: { queued: 0, converting: 0, ready: 48, failed: 2 } });
    const endedEvents = psql('cadfleet', ['-tA', '-c', `SELECT count(*) FROM model_events WHERE type = 'batch.ended' AND batch_id = '${batchId}'`]);
    expect(endedEvents.out.trim(), endedEvents.err).toBe('1');
    files.forEach((f, i) => {
      const m = states.get(ids[i]!);
      if (f.bad) {
        expect(m, f.name).toMatchObject({ state: 'failed', errorCode: 'corrupt' });
        expect(String(m!.error).length, f.name).toBeGreaterThan(20);
      } else expect(m?.state, `${f.name}: ${JSON.stringify(m)}`).toBe('ready');
    });
    // Converted once: one `ready` attempt per good model (a unique index also guards it), none
    // for the bad ones; the attempts worker-1 held when it died were taken over.
    const list = ids.map((m) => `'${m}'`).join(',');
    const attempts = psql('cadfleet', ['-tAF', ' ', '-c', `SELECT model_id, count(*) FILTER (WHERE outcome = 'ready'), count(*) FILTER (WHERE worker_host = '${id('worker-1')}' AND outcome IS DISTINCT FROM 'ready' AND outcome IS DISTINCT FROM 'failed') FROM conversion_attempts WHERE model_id IN (${list}) GROUP BY model_id`]);
    expect(attempts.code, attempts.err).toBe(0);
    const rows = new Map(attempts.out.trim().split('\n').map((l) => l.split(' ')).map(([m, ready, orphaned]) => [m!, { ready: Number(ready), orphaned: Number(orphaned) }]));
    files.forEach((f, i) => expect(rows.get(ids[i]!)?.ready ?? 0, f.name).toBe(f.bad ? 0 : 1));
    const takenOver = [...rows.values()].reduce((n, r) => n + r.orphaned, 0);
    expect(takenOver, 'attempts worker-1 held when it died').toBeGreaterThanOrEqual(1);
    const byWorker: Record<string, number> = {};
    for (const m of states.values()) if (m.workerHost) byWorker[m.workerHost.replace(`${NAME}-`, '')] = (byWorker[m.workerHost.replace(`${NAME}-`, '')] ?? 0) + 1;

    const up = await cli('local', 'up');
    expect(up.code, up.stderr).toBe(0);
    expect(ssh('worker-1', 'systemctl', 'is-active', 'cadfleet-worker').out).toBe('active');
    report.faults.push({
      fault: 'worker host killed (worker-1)',
      during: 'a batch (POST /api/v1/batches) of 50 uploads through the LB (48 STEP assemblies, 2 bad files), started at once',
      outcome: `48/48 ready, each converted once (one \`ready\` attempt per model); the 2 bad files \`failed\` with their reason; the batch ended once (48 ready, 2 failed); ${takenOver} attempt(s) held by worker-1 taken over; by host: ${Object.entries(byWorker).map(([w, n]) => `${w} ${n}`).join(', ')}`,
      recovery: `last job done ${seconds(took)} after the kill; \`local up\` brought worker-1 back`,
    });
    report.passed.add('worker');
  }, 420_000);

  it('keeps every streaming session when a streamer host dies: 10 sessions resume on the other streamer and complete; up brings the host back', async () => {
    const work = tempDir('cadfleet-rel-');
    expect(fullyRouted()).toBe(true);
    // Ten viewers reading slowly (a frame every 0.8 s: each session lasts ~10 s), one session each.
    const load = streamLoad(work, { SESSIONS: '10', ONCE: '1', ACK_DELAY_MS: '800', MAX_SECONDS: '240' }, 300);
    let held: Record<string, number> = {};
    await until('streamer-1 holding sessions', async () => {
      held = await streamerSessions();
      return (held[id('streamer-1')] ?? 0) > 0 && Object.values(held).reduce((a, b) => a + b, 0) >= 8;
    }, 60);
    const killedAt = Date.now();
    // Whatever happens next, the scenarios after this one get the host back.
    onTestFinished(async () => void (await cli('local', 'up')));
    await killHost('streamer-1');
    await load.exited;
    const took = Date.now() - killedAt;
    const sessions = readJson<StreamResult>(path.join(work, 'streams.json'));
    console.log(`streamer-1 killed holding ${held[id('streamer-1')]} of ${Object.values(held).reduce((a, b) => a + b, 0)} sessions: ${JSON.stringify(sessions)}`);
    expect(sessions.failures, JSON.stringify(sessions)).toBe(0);
    expect(sessions.mismatches).toBe(0);
    expect(sessions.sessions).toBe(10);
    // Every session cut by the kill was resumed (1006 after the LB's read timeout, or 410) and completed.
    expect(sessions.resumes).toBeGreaterThanOrEqual(1);

    const up = await cli('local', 'up');
    expect(up.code, up.stderr).toBe(0);
    expect(ssh('streamer-1', 'systemctl', 'is-active', 'cadfleet-streamer').out).toBe('active');
    const back = await until('the LB routing to streamer-1 again', fullyRouted, 60);
    report.faults.push({
      fault: 'streamer host killed (streamer-1)',
      during: `10 streaming sessions, ${held[id('streamer-1')]} of them on streamer-1`,
      outcome: `10/10 sessions complete, ${sessions.resumes} resume(s) on streamer-2, 0 failed requests, every resume sent exactly the missing parts (${JSON.stringify(sessions.closes)})`,
      recovery: `last session done ${seconds(took)} after the kill; \`local up\`: streamer back in the LB ${seconds(back)} after boot`,
    });
    report.passed.add('streamer');
  }, 420_000);

  it('answers 503 with Retry-After while Redis, then PostgreSQL, is down under load, recovers by itself and loses no upload', async () => {
    const work = tempDir('cadfleet-rel-');
    const before = processes();
    const load = apiLoad(work, { CONCURRENCY: '3', UPLOAD_EVERY: '20', MAX_SECONDS: '240' }, 300);
    await sleep(5000);
    const phases: string[] = [];
    try {
      for (const [what, unit] of [
        ['Redis', 'redis-server'],
        ['PostgreSQL', 'postgresql'],
      ] as const) {
        expect(ssh('data', 'sudo', 'systemctl', 'stop', unit).code).toBe(0);
        let refusal: Answer | undefined;
        const toGate = await until(`the api answering 503 while ${what} is down`, async () => {
          const r = await request('GET', '/api/v1/models');
          if (r.status === 503) refusal = r;
          return r.status === 503;
        }, 30);
        expect(refusal!.headers['retry-after']).toMatch(/^\d+$/);
        expect(refusal!.json).toMatchObject({ statusCode: 503, code: 'dependency_unavailable' });
        // The health gate names the dependency ("redis unreachable"); a request that met the outage
        // before the gate closed gets the error handler's "a storage service is unreachable".
        expect(String(refusal!.json.message)).toMatch(what === 'Redis' ? /redis unreachable|storage service is unreachable/ : /postgres unreachable|storage service is unreachable/);
        await sleep(6000);
        expect(ssh('data', 'sudo', 'systemctl', 'start', unit).code).toBe(0);
        // By itself: nobody restarts the api; both apis answer again.
        const recovered = await until(`the api serving again after ${what} came back`, async () => {
          const answers = await Promise.all(Array.from({ length: 4 }, () => request('GET', '/api/v1/models')));
          return answers.every((a) => a.status === 200);
        }, 60);
        phases.push(`${what} stopped ~${seconds(toGate + 6000)}: 503 + Retry-After within ${seconds(toGate)}, serving ${seconds(recovered)} after its start`);
        await sleep(4000);
      }
    } finally {
      // A failed check must not leave the data host without its services for the scenarios after it.
      for (const unit of ['redis-server', 'postgresql']) ssh('data', 'sudo', 'systemctl', 'start', unit);
      fs.writeFileSync(path.join(work, 'stop'), '');
    }
    await load.exited;
    const traffic = readJson<LoadResult>(path.join(work, 'load.json'));
    console.log(`Redis and PostgreSQL restarts under load: ${JSON.stringify({ ...traffic, uploads: traffic.uploads.length })}`);
    // A client sees 200/201, or 503 with Retry-After from the api: no 502, no 500, no reset.
    expect(Object.keys(traffic.byStatus).sort(), JSON.stringify(traffic)).toEqual(['200', '201', '503']);
    expect(Object.keys(traffic.codes)).toEqual(['503 dependency_unavailable']);
    expect(traffic.missingRetryAfter).toBe(0);
    expect(traffic.errors).toEqual([]);
    // Every upload answered 201 converts; no stored file lacks its row.
    const states = await settle(traffic.uploads, 180);
    keep(states, traffic.uploads);
    expect([...states.values()].filter((m) => m.state !== 'ready').map((m) => `${m.id} ${m.state}`)).toEqual([]);
    expect(states.size).toBe(traffic.uploads.length);
    expect(await orphanUploads()).toEqual([]);
    expect(processes()).toEqual(before);
    report.faults.push({
      fault: 'Redis, then PostgreSQL stopped and started on the data host',
      during: `API load: ${traffic.requests} requests (reads, ${traffic.uploads.length + (traffic.byKind.upload?.byStatus['503'] ?? 0)} uploads) in ${seconds(traffic.seconds * 1000)}`,
      outcome: `${traffic.byStatus['503'] ?? 0} answers 503 dependency_unavailable, all with Retry-After; no other 5xx, no connection error; ${traffic.uploads.length} uploads accepted, all ready; no api or worker restart`,
      recovery: phases.join('; '),
    });
    report.passed.add('data');
  }, 420_000);

  it('brings the LB host back after it dies: nginx, lb-sync and the firewall start at boot, and a viewer resumes', async () => {
    const opened = await request('POST', `/api/v1/models/${e2e.modelId}/sessions`, { body: '{}', headers: { 'content-type': 'application/json' } });
    expect(opened.status, opened.body.toString()).toBe(201);
    const session = opened.json as unknown as { sessionId: string; streamUrl: string; node: string };
    const first = slowStream(session.streamUrl, [], 800);
    let lastWord = Date.now();
    first.ws.on('message', () => (lastWord = Date.now()));
    await first.waitFor('two frames', () => first.frames.length >= 2, 30_000);
    const killedAt = Date.now();
    // Whatever happens next, the scenarios after this one get the host back.
    onTestFinished(async () => void (await cli('local', 'up')));
    await killHost('lb');
    expect((await request('GET', '/healthz', { timeoutMs: 5000 })).status).toBe(0);

    const upStarted = Date.now();
    const up = await cli('local', 'up');
    expect(up.code, up.stderr).toBe(0);
    await until('the LB serving the api again', async () => (await request('GET', '/api/v1/models', { timeoutMs: 5000 })).status === 200, 90);
    const serving = Date.now() - upStarted;
    for (const unit of ['nginx', 'cadfleet-lb-sync', 'nftables']) {
      expect(ssh('lb', 'systemctl', 'is-enabled', unit).out, unit).toBe('enabled');
      expect(ssh('lb', 'systemctl', 'is-active', unit).out, unit).toBe('active');
    }
    await until('the LB routing to every api and streamer', fullyRouted, 60);

    // The viewer's rule (viewer/src/stream.ts, there 45 s): a connection that closed, or that is
    // silent after the manifest, is given up and the session resumed. A crashed LB sends no FIN:
    // the next acknowledgement meets the rebooted LB's reset, or the silence ends the wait.
    await first.waitFor('the viewer giving up the dead connection (closed, or silent 15 s)', () => first.close !== undefined || Date.now() - lastWord > 15_000, 120_000);
    const noticed = Date.now() - killedAt;
    first.terminate();
    const have = first.completeParts();
    const rest = await resumeThroughLb(session.sessionId, have);
    report.faults.push({
      fault: 'LB host killed',
      during: `a streaming session (${have.length} of ${rest.manifest!.order.length} parts received)`,
      outcome: `\`local up\`: nginx, cadfleet-lb-sync and nftables enabled and active after the boot; the viewer gave up the dead connection after ${seconds(noticed)} and resumed: the ${rest.manifest!.sending.length} missing parts, complete`,
      recovery: `LB serving the api ${seconds(serving)} after \`local up\` began (${seconds(Date.now() - killedAt)} from the kill to the session complete)`,
    });
    console.log(`LB host killed: ${JSON.stringify(report.faults.at(-1))}`);
    report.passed.add('lb');
  }, 420_000);

  it('restores a lost model from a backup of the database and of the object store (the drill of docs/operations.md)', async () => {
    const up = await upload('drill.stp', fs.readFileSync(cax('as1-oc-214.stp')));
    expect(up.status, up.body.toString()).toBe(201);
    const modelId = up.json.id!;
    const ready = (await settle([modelId], 120)).get(modelId)!;
    expect(ready.state).toBe('ready');
    const glb = await request('GET', `/api/v1/models/${modelId}/files/model.glb`);
    expect(glb.status).toBe(200);
    const work = tempDir('cadfleet-drill-');

    // Backup: the database (pg_dump from the operator's machine) and every stored object.
    const t0 = Date.now();
    const dumpFile = path.join(work, 'cadfleet.dump');
    const dump = spawnSync('pg_dump', ['-Fc', '-f', dumpFile, `host=${ipOf('data')} dbname=cadfleet user=cadfleet sslmode=verify-full sslrootcert=${path.join(root, 'pki/ca.crt')}`], {
      encoding: 'utf8',
      env: { ...process.env, PGPASSWORD: secrets().postgresPassword },
    });
    expect(dump.status, dump.stderr).toBe(0);
    const client = s3();
    const backedUp: Array<{ bucket: string; key: string; file: string }> = [];
    try {
      for (const [bucket, prefix] of [
        ['cadfleet-uploads', 'uploads/'],
        ['cadfleet-models', 'models/'],
      ] as const) {
        for (const key of await listKeys(client, bucket, prefix)) {
          const file = path.join(work, 'objects', bucket, key);
          fs.mkdirSync(path.dirname(file), { recursive: true });
          const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
          fs.writeFileSync(file, Buffer.from(await object.Body!.transformToByteArray()));
          backedUp.push({ bucket, key, file });
        }
      }
      const backupSeconds = (Date.now() - t0) / 1000;

      // Lost: deleted through the API (the row, then its stored files).
      expect((await request('DELETE', `/api/v1/models/${modelId}`)).status).toBe(204);
      expect((await request('GET', `/api/v1/models/${modelId}`)).status).toBe(404);
      await expect(client.send(new HeadObjectCommand({ Bucket: 'cadfleet-models', Key: `models/e2e/${modelId}/model.glb` }))).rejects.toThrow();

      // Restore: the dump into a scratch database, the model's rows copied across, its objects put back.
      const t1 = Date.now();
      expect(ssh('data', 'cd', '/tmp', '&&', 'sudo', '-u', 'postgres', 'createdb', '-O', 'cadfleet', 'cadfleet_restore').code).toBe(0);
      try {
        const restore = spawnSync('pg_restore', ['--no-owner', '--no-privileges', '-d', `host=${ipOf('data')} dbname=cadfleet_restore user=cadfleet sslmode=verify-full sslrootcert=${path.join(root, 'pki/ca.crt')}`, dumpFile], {
          encoding: 'utf8',
          env: { ...process.env, PGPASSWORD: secrets().postgresPassword },
        });
        expect(restore.status, restore.stderr).toBe(0);
        for (const [table, column] of [
          ['models', 'id'],
          ['conversion_attempts', 'model_id'],
        ] as const) {
          const rows = psql('cadfleet_restore', ['-c', `\\copy (SELECT * FROM ${table} WHERE ${column} = '${modelId}') TO STDOUT`]);
          expect(rows.code, rows.err).toBe(0);
          expect(rows.out.trim().length, `${table} rows of ${modelId} in the backup`).toBeGreaterThan(0);
          const back = psql('cadfleet', ['-c', `\\copy ${table} FROM STDIN`], rows.out);
          expect(back.code, back.err).toBe(0);
        }
      } finally {
        ssh('data', 'cd', '/tmp', '&&', 'sudo', '-u', 'postgres', 'dropdb', '--if-exists', 'cadfleet_restore');
      }
      const mine = backedUp.filter((o) => o.key.split('/')[2] === modelId);
      expect(mine.map((o) => o.key.split('/').slice(3).join('/')).sort()).toEqual(['input.stp', 'manifest.json', 'model.glb', 'result.json']);
      for (const o of mine) await client.send(new PutObjectCommand({ Bucket: o.bucket, Key: o.key, Body: fs.readFileSync(o.file) }));
      const restoreSeconds = (Date.now() - t1) / 1000;

      // Back as it was: the record, the same model.glb, and a streaming session through the LB.
      const again = await request('GET', `/api/v1/models/${modelId}`);
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({ id: modelId, state: 'ready', stats: ready.stats, workerHost: ready.workerHost });
      const glbAgain = await request('GET', `/api/v1/models/${modelId}/files/model.glb`);
      expect(glbAgain.status).toBe(200);
      expect(sha256(glbAgain.body)).toBe(sha256(glb.body));
      const opened = await request('POST', `/api/v1/models/${modelId}/sessions`, { body: '{}', headers: { 'content-type': 'application/json' } });
      expect(opened.status).toBe(201);
      const stream = openStream(`wss://${lbAddress()}${(opened.json as unknown as { streamUrl: string }).streamUrl}`, { ca: caPem() });
      expect(await stream.closed).toEqual({ code: 1000, reason: 'complete' });
      report.faults.push({
        fault: 'restore drill: a model deleted through the API',
        during: `backup of the database (pg_dump, ${(fs.statSync(dumpFile).size / 1024).toFixed(0)} KiB) and of ${backedUp.length} stored objects in ${backupSeconds.toFixed(1)} s`,
        outcome: 'its rows restored from the dump (through a scratch database) and its 4 objects put back: the same record, the same model.glb (sha256), streamed again',
        recovery: `restore ${restoreSeconds.toFixed(1)} s`,
      });
    } finally {
      client.destroy();
    }
    console.log(`restore drill: ${JSON.stringify(report.faults.at(-1))}`);
    report.passed.add('restore');
  }, 300_000);

  it('rejects hostile input through the LB with a clear error inside its limits, and neither api nor worker dies', async () => {
    const before = processes();
    const work = tempDir('cadfleet-hostile-');
    const step = fs.readFileSync(cax('as1-oc-214.stp'));
    const box = fs.readFileSync(stlSample('box_2x3x4.stl'));
    // 1 000 000 triangles, 3 000 000 vertices: a 50 MB binary STL under the 100 MB upload limit.
    const triangles = 1_000_000;
    const big = Buffer.alloc(84 + triangles * 50);
    big.writeUInt32LE(triangles, 80);
    for (let i = 0; i < triangles; i++) {
      const o = 84 + i * 50;
      const x = i % 1000;
      const y = Math.floor(i / 1000);
      big.writeFloatLE(1, o + 8);
      for (const [k, [vx, vy]] of [[x, y], [x + 1, y], [x, y + 1]].entries()) {
        big.writeFloatLE(vx!, o + 12 + k * 12);
        big.writeFloatLE(vy!, o + 16 + k * 12);
      }
    }
    fs.writeFileSync(path.join(work, 'million.stl'), big);
    const corrupt = Buffer.from(step);
    for (let i = 0; i < 20_000; i++) corrupt[Math.floor(step.length / 2) + i] = (i * 37) % 256;

    const converted: Array<{ input: string; modelId: string; expect: (m: ModelJson) => void; answer: string }> = [];
    const refused: Array<{ input: string; answer: Answer; status: number; code: string }> = [];
    const accept = async (input: string, r: Promise<Answer>, check: (m: ModelJson) => void): Promise<void> => {
      const a = await r;
      expect(a.status, `${input}: ${a.body.toString().slice(0, 300)}`).toBe(201);
      converted.push({ input, modelId: a.json.id!, expect: check, answer: `201 in ${a.ms.toFixed(0)} ms` });
    };
    const refuse = async (input: string, r: Promise<Answer>, status: number, code: string): Promise<void> => {
      const a = await r;
      refused.push({ input, answer: a, status, code });
    };

    // Content only the converter can judge: accepted, then failed with a reason (or converted within limits).
    await accept('truncated STEP (as1-oc-214.stp cut in half)', upload('truncated.stp', step.subarray(0, step.length >> 1)), (m) => {
      expect(m).toMatchObject({ state: 'failed', errorCode: 'corrupt' });
      expect(m.error).toMatch(/truncated/);
    });
    await accept('corrupted STEP (20 KB of garbage in the middle)', upload('corrupted.stp', corrupt), (m) => expect(m).toMatchObject({ state: 'failed', errorCode: 'corrupt' }));
    await accept('PNG bytes named .stp', upload('picture.stp', Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(4096, 7)])), (m) =>
      expect(m).toMatchObject({ state: 'failed', errorCode: 'corrupt' }),
    );
    await accept('tessellation bomb at quality=fine (13 KB BREP: one sphere placed 10^6 times)', upload('bomb.brep', fs.readFileSync(path.resolve('test/fixtures/hostile/sphere-bomb.brep')), { query: '?quality=fine' }), (m) => {
      expect(m.state).toBe('failed');
      expect(['memory', 'timeout']).toContain(m.errorCode);
      expect(m.error).toMatch(/over the limit|longer than the limit/);
    });
    await accept('binary STL with 1 000 000 triangles (3 000 000 vertices, 50 MB)', upload('million.stl', big), (m) => expect(m).toMatchObject({ state: 'ready', stats: { triangles } }));
    await accept('a name that only looks encoded ("..%2F..%2Fetc%2Fpasswd.stl": a label, never decoded)', upload('..%2F..%2Fetc%2Fpasswd.stl', box), (m) =>
      expect(m).toMatchObject({ state: 'ready', name: '..%2F..%2Fetc%2Fpasswd.stl' }),
    );
    // Archives: a deflate bomb whose header lies is seen only by the worker as it extracts.
    await accept('a .zip deflate bomb whose header lies (256 MiB of zeros declared as 1 KB)', upload('liar.zip', makeZip([{ name: 'bomb.stl', zeros: 256 * 1024 * 1024, declaredSize: 1024 }])), (m) => {
      expect(m).toMatchObject({ state: 'failed', errorCode: 'archive-invalid' });
      expect(m.error).toMatch(/more bytes than its header declares/);
    });
    const junkHeader = `X-Junk: ${'j'.repeat(20 * 1024 * 1024)}\r\n`;
    await accept('a 20 MB header line in the multipart part (the parser keeps 80 KiB of part headers, drops the rest)', upload('junk.stl', box, { extraPartHeaders: junkHeader }), (m) =>
      expect(m.state).toBe('ready'),
    );

    // Refused at the door.
    await refuse('non-UTF-8 file name (bytes ff fe c3 28)', upload(Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0x2e, 0x73, 0x74, 0x6c]), box), 400, 'invalid_file_name');
    await refuse('path traversal name "../../../etc/cron.d/x.stl"', upload('../../../etc/cron.d/x.stl', box), 400, 'invalid_file_name');
    await refuse('Windows path name "..\\..\\evil.stl"', upload('..\\..\\evil.stl', box), 400, 'invalid_file_name');
    await refuse('a 300 KB file name', upload(`${'a'.repeat(300_000)}.stl`, box), 400, 'invalid_file_name');
    await refuse('wrong content type: the file as application/octet-stream', request('POST', '/api/v1/models', { body: box, headers: { 'content-type': 'application/octet-stream' } }), 415, 'unsupported_media_type');
    await refuse('wrong content type: text/plain', request('POST', '/api/v1/models', { body: 'solid x\nendsolid x\n', headers: { 'content-type': 'text/plain' } }), 415, 'not_multipart');
    await refuse('unsupported extension (.exe)', upload('setup.exe', box), 415, 'unsupported_type');
    await refuse('a .zip whose entry climbs out (zip-slip "../../etc/cron.d/x.stl")', upload('slip.zip', makeZip([{ name: '../../etc/cron.d/x.stl', data: box }])), 400, 'archive_invalid');
    await refuse('a .zip holding a symlink to /etc/shadow', upload('link.zip', makeZip([{ name: 'part.stl', data: '/etc/shadow', symlink: true }])), 400, 'archive_invalid');
    await refuse('a .zip that declares 6 GiB expanded (two entries of 3 GiB)', upload('big.zip', makeZip([{ name: 'a.stl', data: box, declaredSize: 3 * 1024 ** 3 }, { name: 'b.stl', data: box, declaredSize: 3 * 1024 ** 3 }])), 413, 'archive_too_large');
    await refuse('a .zip holding another .zip', upload('nested.zip', makeZip([{ name: 'part.stl', data: box }, { name: 'more.zip', data: 'PK' }])), 400, 'archive_invalid');
    await refuse('a 100 KB HTTP header', request('GET', '/api/v1/models', { headers: { 'x-junk': 'j'.repeat(100_000) } }), 400, '(nginx: Request Header Or Cookie Too Large)');
    await refuse('a multipart boundary of 100 KB', request('POST', '/api/v1/models', { body: `--${'B'.repeat(100_000)}\r\n`, headers: { 'content-type': `multipart/form-data; boundary=${'B'.repeat(100_000)}` } }), 400, '(nginx: Request Header Or Cookie Too Large)');
    for (const r of refused) {
      expect(r.answer.status, `${r.input}: ${r.answer.body.toString().slice(0, 200)}`).toBe(r.status);
      if (!r.code.startsWith('(')) {
        expect(r.answer.json.code, r.input).toBe(r.code);
        expect(String(r.answer.json.message).length, r.input).toBeGreaterThan(10);
      }
    }

    // Slow clients (slow-loris): a header trickled, a body that stops, and many trickled bodies.
    // The uploads refused above spent part of this address's upload burst (nginx_lb_upload_burst
    // 20, refilled at 5/s); on a fast run the stalled upload met an empty bucket and got 429. Let
    // it refill, so that the 429s below come from the 8 uploads in progress, as asserted.
    await sleep(5000);
    const connect = (): { socket: tls.TLSSocket; done: Promise<number>; firstLine: () => string } => {
      const socket = tls.connect({ host: lbAddress(), port: 443, ca: caPem() });
      const t0 = Date.now();
      let data = '';
      socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
      socket.on('error', () => undefined);
      return { socket, done: new Promise((resolve) => socket.on('close', () => resolve(Date.now() - t0))), firstLine: () => data.split('\r\n')[0] ?? '' };
    };
    const uploadHead = `POST /api/v1/models HTTP/1.1\r\nHost: ${lbAddress()}\r\nAuthorization: Bearer ${e2e.key}\r\nContent-Type: multipart/form-data; boundary=BB\r\nContent-Length: 100000\r\n\r\n--BB\r\nContent-Disposition: form-data; name="file"; filename="slow.stl"\r\n\r\nsolid x\n`;
    const slowHeader = connect();
    slowHeader.socket.write('POST /api/v1/models HTTP/1.1\r\nHost: x\r\n');
    const drip = setInterval(() => slowHeader.socket.writable && slowHeader.socket.write('X'), 1000);
    const stalled = connect();
    stalled.socket.write(uploadHead);
    // nginx counts an upload in progress once it has read its header: the stalled one must hold
    // its slot before the trickled ones come (on a starved machine their handshakes could finish
    // first, take the 8 slots and leave it a 429: seen once in CI).
    await Promise.race([new Promise<void>((resolve) => stalled.socket.once('secureConnect', () => resolve())), sleep(10_000)]);
    await sleep(1000);
    const trickled = Array.from({ length: 12 }, () => connect());
    for (const t of trickled) t.socket.write(uploadHead);
    const trickle = setInterval(() => trickled.forEach((t) => t.socket.writable && t.socket.write('f')), 2000);
    await sleep(6000);
    const meanwhile = await request('GET', '/api/v1/models');
    const headerCut = await Promise.race([slowHeader.done, sleep(30_000).then(() => -1)]);
    const bodyCut = await Promise.race([stalled.done, sleep(40_000).then(() => -1)]);
    const admitted = trickled.filter((t) => t.firstLine() === '').length;
    const limited = trickled.filter((t) => t.firstLine().startsWith('HTTP/1.1 429')).length;
    // The stalled upload holds one of the address's 8 slots while it lasts, unless it came after them.
    const stalledHeldSlot = !stalled.firstLine().startsWith('HTTP/1.1 429');
    clearInterval(drip);
    clearInterval(trickle);
    for (const c of [slowHeader, stalled, ...trickled]) c.socket.destroy();
    expect(meanwhile.status).toBe(200);
    expect(headerCut).toBeGreaterThan(8000);
    expect(headerCut).toBeLessThan(15_000);
    expect(bodyCut, `the stalled upload's answer: ${stalled.firstLine() || 'none'}`).toBeGreaterThan(18_000);
    expect(bodyCut).toBeLessThan(26_000);
    expect({ inProgress: admitted + (stalledHeldSlot ? 1 : 0), answered: admitted + limited }).toEqual({ inProgress: 8, answered: 12 });

    const states = await settle(converted.map((c) => c.modelId), 360);
    for (const c of converted) {
      const m = states.get(c.modelId)!;
      expect(m, c.input).toBeDefined();
      c.expect(m);
    }
    const after = processes();
    expect(after).toEqual(before);
    expect((await request('GET', '/api/v1/models')).status).toBe(200);

    const took = (m: ModelJson): string => (m.startedAt && m.finishedAt ? seconds(Date.parse(m.finishedAt) - Date.parse(m.startedAt)) : '');
    for (const c of converted) {
      const m = states.get(c.modelId)!;
      report.hostile.push({
        input: c.input,
        answer: c.answer,
        outcome: m.state === 'ready' ? `ready after ${took(m)} (${m.stats?.triangles} triangles)` : `failed after ${took(m)}: \`${m.errorCode}\` "${m.error}"`,
      });
    }
    for (const r of refused) report.hostile.push({ input: r.input, answer: `${r.answer.status} ${r.code} in ${r.answer.ms.toFixed(0)} ms`, outcome: 'nothing stored' });
    report.hostile.push(
      { input: 'slow-loris: a request header sent one byte a second', answer: `connection closed after ${seconds(headerCut)}`, outcome: 'client_header_timeout 10 s' },
      { input: 'slow-loris: an upload body that stops after its first bytes', answer: `connection closed after ${seconds(bodyCut)}`, outcome: 'client_body_timeout 20 s; the api logs the abandoned upload (499), stores nothing' },
      { input: 'slow-loris: 12 uploads from one address, one byte every 2 s each', answer: `${admitted} admitted, ${limited} answered 429 at once`, outcome: `8 uploads in progress per address (the stalled one ${stalledHeldSlot ? 'held' : 'did not hold'} a slot); meanwhile a GET answered ${meanwhile.status} in ${meanwhile.ms.toFixed(0)} ms` },
    );
    report.processRestarts = `Over all of these, the api and worker units kept their processes: systemd's restart count and main pid of \`cadfleet-api\` on both api hosts and \`cadfleet-worker\` on both worker hosts were the same before and after (${Object.entries(after).map(([k, v]) => `${k.split(' ')[0]} ${v.replace(/MainPID=\d+ /, '')}`).join(', ')}).`;
    report.passed.add('hostile');
  }, 600_000);

  it('refuses access: no key, a revoked key, another tenant, forged and expired stream tokens, backend ports from outside the fleet; rate-limits; secures the viewer', async () => {
    const newKey = async (project: string, name: string): Promise<string> => {
      const r = await cli('keys', 'create', '--env', 'local', '--project', project, '--name', name);
      expect(r.code, r.stderr).toBe(0);
      return r.stdout.trim().split('\n').pop()!;
    };
    const keyA = await newKey('rel-a', 'tenant-a');
    const keyB = await newKey('rel-b', 'tenant-b');
    const box = fs.readFileSync(stlSample('box_2x3x4.stl'));
    const mine = await upload('a.stl', box, { key: keyA });
    expect(mine.status).toBe(201);
    const modelId = mine.json.id!;
    expect((await settle([modelId], 120, keyA)).get(modelId)?.state).toBe('ready');
    const presigned = await request('POST', '/api/v1/uploads', { key: keyA, body: JSON.stringify({ name: 'p.stl', size: box.length }), headers: { 'content-type': 'application/json' } });
    expect(presigned.status).toBe(201);
    const json = { 'content-type': 'application/json' };
    const routes = (key: string | null): Array<[string, Promise<Answer>]> => {
      const form = multipart('x.stl', box);
      return [
        ['POST /api/v1/models', request('POST', '/api/v1/models', { key, body: form.body, headers: { 'content-type': form.type } })],
        ['GET /api/v1/models', request('GET', '/api/v1/models', { key })],
        ['GET /api/v1/models/:id', request('GET', `/api/v1/models/${modelId}`, { key })],
        ['GET /api/v1/models/:id/files/model.glb', request('GET', `/api/v1/models/${modelId}/files/model.glb`, { key })],
        ['DELETE /api/v1/models/:id', request('DELETE', `/api/v1/models/${modelId}`, { key })],
        ['POST /api/v1/models/:id/sessions', request('POST', `/api/v1/models/${modelId}/sessions`, { key, body: '{}', headers: json })],
        ['POST /api/v1/uploads', request('POST', '/api/v1/uploads', { key, body: '{"name":"a.stl","size":10}', headers: json })],
        ['POST /api/v1/uploads/:id/complete', request('POST', `/api/v1/uploads/${presigned.json.id}/complete`, { key })],
        ['GET /status', request('GET', '/status?format=json', { key })],
      ];
    };
    const expectAll = async (label: string, list: Array<[string, Promise<Answer>]>, status: number, code: string): Promise<void> => {
      for (const [route, pending] of list) {
        const a = await pending;
        expect({ route, status: a.status, code: a.json.code }, `${label}: ${a.body.toString().slice(0, 200)}`).toEqual({ route, status, code });
      }
      report.access.push({ check: `${label}: every API route (${list.length}: ${list.map(([r]) => r.split(' ')[0]).join(', ')} ...)`, refused: `${status} ${code}` });
    };
    await expectAll('no key', routes(null), 401, 'missing_key');
    const forgedKey = `cfk_${keyA.slice(4, 16)}_${'A'.repeat(43)}`;
    await expectAll('a key with the right id and a wrong secret', routes(forgedKey), 401, 'invalid_key');
    const revoked = await newKey('rel-a', 'revoked');
    expect((await request('GET', '/api/v1/models', { key: revoked })).status).toBe(200);
    const revoke = await cli('keys', 'revoke', '--env', 'local', revoked.slice(4, 16));
    expect(revoke.code, revoke.stderr).toBe(0);
    await expectAll('a revoked key (`cadfleet keys revoke`, effective on the next request)', routes(revoked), 401, 'revoked_key');

    // Another tenant: every model route answers 404 as for an unknown id; nothing changes.
    const other: Array<[string, Promise<Answer>]> = [
      ['GET /api/v1/models/:id', request('GET', `/api/v1/models/${modelId}`, { key: keyB })],
      ['GET /api/v1/models/:id/files/model.glb', request('GET', `/api/v1/models/${modelId}/files/model.glb`, { key: keyB })],
      ['DELETE /api/v1/models/:id', request('DELETE', `/api/v1/models/${modelId}`, { key: keyB })],
      ['POST /api/v1/models/:id/sessions', request('POST', `/api/v1/models/${modelId}/sessions`, { key: keyB, body: '{}', headers: json })],
    ];
    await expectAll("another project's key on a model", other, 404, 'model_not_found');
    const completeOther = await request('POST', `/api/v1/uploads/${presigned.json.id}/complete`, { key: keyB });
    expect({ status: completeOther.status, code: completeOther.json.code }).toEqual({ status: 404, code: 'upload_not_found' });
    report.access.push({ check: "another project's key completing a presigned upload", refused: '404 upload_not_found' });
    const listB = await request('GET', '/api/v1/models', { key: keyB });
    expect((listB.json as unknown as { models: Array<{ id: string }> }).models.map((m) => m.id)).not.toContain(modelId);
    expect((await request('GET', `/api/v1/models/${modelId}`, { key: keyA })).json).toMatchObject({ id: modelId, state: 'ready' });
    const statusA = await request('GET', '/status?format=json', { key: keyA });
    expect({ status: statusA.status, code: statusA.json.code }).toEqual({ status: 403, code: 'admin_required' });
    report.access.push({ check: 'a project key on /status (admin only)', refused: '403 admin_required' });

    // Stream tokens through the LB: forged, expired, another session's, tampered, missing.
    const open = async (): Promise<{ sessionId: string; streamUrl: string; node: string }> => {
      const r = await request('POST', `/api/v1/models/${modelId}/sessions`, { key: keyA, body: '{}', headers: json });
      expect(r.status).toBe(201);
      return r.json as unknown as { sessionId: string; streamUrl: string; node: string };
    };
    const a = await open();
    const b = await open();
    const token = new URL(a.streamUrl, 'https://x').searchParams.get('token')!;
    const [v, claims, sig] = token.split('.') as [string, string, string];
    const decoded = JSON.parse(Buffer.from(claims, 'base64url').toString()) as StreamClaims;
    const base = `/stream/${a.node}/${a.sessionId}`;
    const flipped = sig.slice(0, -2) + (sig.at(-2) === 'A' ? 'B' : 'A') + sig.at(-1);
    const tokens: Array<[string, string, string]> = [
      ['a forged signature', `${base}?token=${v}.${claims}.${flipped}`, 'token_invalid'],
      ['claims changed to another project', `${base}?token=${v}.${Buffer.from(JSON.stringify({ ...decoded, prj: 'rel-b' })).toString('base64url')}.${sig}`, 'token_invalid'],
      ['signed with another secret', `${base}?token=${signStreamToken('x'.repeat(48), { ...decoded, exp: Date.now() + 60_000 })}`, 'token_invalid'],
      ['expired (signed with the fleet secret)', `${base}?token=${signStreamToken(secrets().streamTokenSecret, { ...decoded, exp: Date.now() - 1000 })}`, 'token_expired'],
      ["another session's token", `/stream/${b.node}/${b.sessionId}?token=${token}`, 'token_mismatch'],
      ['no token', base, 'token_missing'],
    ];
    for (const [what, url, code] of tokens) {
      const c = openStream(`wss://${lbAddress()}${url}`, { ca: caPem() });
      const closed = await c.closed;
      expect({ what, close: closed.code, code: c.error?.code, frames: c.frames.length }).toEqual({ what, close: 4401, code, frames: 0 });
      report.access.push({ check: `stream token: ${what}`, refused: `close 4401 ${code}` });
    }
    const genuine = openStream(`wss://${lbAddress()}${a.streamUrl}`, { ca: caPem() });
    expect(await genuine.closed).toEqual({ code: 1000, reason: 'complete' });

    // The backend hosts' ports from outside the fleet: a machine on the fleet's own network (a
    // namespace on its bridge, with an address no host has) reaches the LB and SSH, nothing else.
    const ns = `${NAME}-out`;
    const veth = `${NAME}xout`;
    const outsiderIp = `${fleet.gateway.split('.').slice(0, 3).join('.')}.250`;
    const run = (argv: string[]): void => {
      const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
      expect(r.status, `${argv.join(' ')}: ${r.stderr}`).toBe(0);
    };
    const targets: Array<[string, number, string]> = [
      ...['api-1', 'api-2'].map((h): [string, number, string] => [h, 8080, 'api']),
      ...['worker-1', 'worker-2'].map((h): [string, number, string] => [h, 9464, 'worker metrics']),
      ...['streamer-1', 'streamer-2'].map((h): [string, number, string] => [h, 8090, 'streamer']),
      ['data', 5432, 'PostgreSQL'],
      ['data', 6379, 'Redis'],
      ['data', 9000, 'S3 server'],
    ];
    // The script goes on standard input: ssh joins its arguments into one remote command line.
    const probe = (prefix: string[], list: Array<[string, number]>): Record<string, string> => {
      const script = list.map(([ip, port]) => `(timeout 3 bash -c 'echo > /dev/tcp/${ip}/${port}' 2>/dev/null && echo "${ip}:${port} open" || echo "${ip}:${port} closed") &`).join('\n');
      const r = spawnSync(prefix[0]!, [...prefix.slice(1), 'bash', '-s'], { encoding: 'utf8', timeout: 20_000, input: `${script}\nwait\n` });
      expect(r.status, `${prefix.join(' ')} bash -s: ${r.stderr}`).toBe(0);
      return Object.fromEntries(r.stdout.trim().split('\n').map((l) => l.split(' ') as [string, string]));
    };
    spawnSync('ip', ['netns', 'delete', ns]);
    spawnSync('ip', ['link', 'delete', veth]);
    try {
      run(['ip', 'netns', 'add', ns]);
      run(['ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      run(['ip', 'link', 'set', veth, 'master', fleet.bridge, 'up']);
      run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
      run(['ip', '-n', ns, 'addr', 'add', `${outsiderIp}/24`, 'dev', 'eth0']);
      run(['ip', '-n', ns, 'link', 'set', 'eth0', 'up']);
      const outside = probe(['ip', 'netns', 'exec', ns], [...targets.map(([h, port]): [string, number] => [ipOf(h), port]), [lbAddress(), 443], [lbAddress(), 80], [ipOf('api-1'), 22]]);
      const lbFromOutside = spawnSync('ip', ['netns', 'exec', ns, 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', '--cacert', path.join(root, 'pki/ca.crt'), `https://${lbAddress()}/api/v1/models`, '-H', `Authorization: Bearer ${keyA}`], { encoding: 'utf8' });
      // From inside the fleet the same ports answer (an api host to a streamer and to the data host).
      const inside = probe(['ssh', '-i', path.join(root, 'ssh/id_ed25519'), '-o', 'BatchMode=yes', '-o', `UserKnownHostsFile=${path.join(root, 'ssh/known_hosts')}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'LogLevel=ERROR', `admin@${ipOf('api-1')}`], targets.filter(([h]) => h !== 'api-1').map(([h, port]) => [ipOf(h), port]));
      console.log(`from outside the fleet (${outsiderIp}): ${JSON.stringify(outside)}; from api-1: ${JSON.stringify(inside)}`);
      for (const [h, port, what] of targets) {
        expect(outside[`${ipOf(h)}:${port}`], `${what} on ${h} from outside`).toBe('closed');
        if (h !== 'api-1') expect(inside[`${ipOf(h)}:${port}`], `${what} on ${h} from api-1`).toBe('open');
      }
      expect(outside[`${lbAddress()}:443`]).toBe('open');
      expect(outside[`${lbAddress()}:80`]).toBe('open');
      expect(lbFromOutside.stdout).toBe('200');
      report.access.push({
        check: `from a machine on the fleet's network that is not a fleet host (${outsiderIp}): ${targets.map(([h, port]) => `${h}:${port}`).join(', ')}`,
        refused: `no answer (nftables drops it; the fleet's hosts reach them); the LB's 443 and 80 answer (${lbFromOutside.stdout} through the LB), SSH answers (keys only)`,
      });
    } finally {
      spawnSync('ip', ['netns', 'delete', ns]);
      spawnSync('ip', ['link', 'delete', veth]);
    }

    // Security headers on the viewer (and on every answer of the LB's HTTPS server).
    const page = await request('GET', '/', { key: null });
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toBe(VIEWER_CSP);
    expect(page.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY', 'referrer-policy': 'no-referrer' });
    expect(page.headers['strict-transport-security']).toMatch(/max-age=\d{7,}/);
    const denied = await request('GET', '/api/v1/models', { key: null });
    expect(denied.headers).toMatchObject({ 'x-content-type-options': 'nosniff', 'x-frame-options': 'DENY' });
    const plain = spawnSync('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', `http://${lbAddress()}/`], { encoding: 'utf8' });
    expect(plain.stdout).toBe(`301 https://${lbAddress()}/`);
    report.access.push({ check: 'the viewer over HTTP', refused: '301 to HTTPS; over HTTPS: Content-Security-Policy (the viewer\'s, no inline script), HSTS, nosniff, X-Frame-Options DENY, Referrer-Policy no-referrer' });

    // Rate limits at the LB (per client address): uploads 5/s (burst 20), sessions 10/s (burst 40).
    // `wave` at once: uploads go six at a time, under the 8 in progress per address, so that the
    // request rate is what is limited.
    // Every 429 is the LB's own, in the api's JSON error shape, with Retry-After.
    // At most `limit.burst` plus what the rate admits while the burst lasts gets through (plus one:
    // nginx counts in milliseconds, from the first request); a slow machine admits more, not fewer.
    const burst = async (n: number, send: () => Promise<Answer>, limit: { rate: number; burst: number }, wave = n): Promise<Record<string, number>> => {
      const answers: Answer[] = [];
      const started = Date.now();
      for (let i = 0; i < n; i += wave) answers.push(...(await Promise.all(Array.from({ length: Math.min(wave, n - i) }, send))));
      const took = (Date.now() - started) / 1000;
      expect(took, 'the burst took so long that the limiter refilled').toBeLessThan(4);
      const admitted = answers.filter((a) => a.status !== 429).length;
      expect(admitted, `admitted in ${took.toFixed(2)} s`).toBeLessThanOrEqual(limit.burst + Math.ceil(limit.rate * took) + 1);
      const counts: Record<string, number> = {};
      for (const x of answers) counts[x.status] = (counts[x.status] ?? 0) + 1;
      for (const x of answers.filter((a) => a.status === 429)) {
        expect(x.headers['content-type'], x.body.toString('utf8')).toBe('application/json');
        expect(x.json).toMatchObject({ statusCode: 429, error: 'Too Many Requests', code: 'rate_limited' });
        expect(Number(x.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      }
      return counts;
    };
    await sleep(5000);
    const uploads = await burst(40, () => upload('burst.stl', box, { key: keyA }), { rate: 5, burst: 20 }, 6);
    const sessions = await burst(80, () => request('POST', `/api/v1/models/${modelId}/sessions`, { key: keyA, body: '{}', headers: json }), { rate: 10, burst: 40 });
    console.log(`rate limits: uploads ${JSON.stringify(uploads)}, sessions ${JSON.stringify(sessions)}`);
    expect(Object.keys(uploads).sort()).toEqual(['201', '429']);
    expect(Object.keys(sessions).sort()).toEqual(['201', '429']);
    report.access.push({ check: '40 uploads within a few seconds from one address (six at a time)', refused: `${uploads['429']} answered 429 (JSON rate_limited, Retry-After), ${uploads['201']} accepted (5/s, burst 20)` });
    report.access.push({ check: '80 session hand-outs at once from one address', refused: `${sessions['429']} answered 429, ${sessions['201']} handed out (10/s, burst 40)` });
    // The limiter refills before the next scenario's traffic.
    await sleep(8000);
    report.passed.add('access');
  }, 420_000);

  it("answers the LB's own refusals in the api's JSON shape: an upload announced over the size limit, and no api to answer", async () => {
    // Announced over client_max_body_size (200m): refused from the headers, before any body.
    const announced = await new Promise<Answer>((resolve) => {
      const started = performance.now();
      const req = https.request(
        {
          host: lbAddress(),
          port: 443,
          path: '/api/v1/models',
          method: 'POST',
          ca: caPem(),
          agent: false,
          timeout: 30_000,
          headers: { authorization: `Bearer ${e2e.key}`, 'content-type': 'multipart/form-data; boundary=x', 'content-length': String(300 * 1024 * 1024) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('end', () => {
            const body = Buffer.concat(chunks);
            let json: Answer['json'] = {};
            try {
              json = JSON.parse(body.toString('utf8')) as Answer['json'];
            } catch {
              // not JSON: the assertion below shows it
            }
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, ms: performance.now() - started });
            req.destroy();
          });
        },
      );
      req.on('error', (err) => resolve({ status: 0, headers: {}, body: Buffer.from(err.message), json: {}, ms: performance.now() - started }));
      req.flushHeaders();
    });
    expect(announced.status, announced.body.toString('utf8')).toBe(413);
    expect(announced.headers['content-type']).toBe('application/json');
    expect(announced.json).toMatchObject({ statusCode: 413, code: 'file_too_large' });
    expect(String(announced.json.message)).toContain('/api/v1/uploads');

    // Both apis stopped: the LB answers for them, JSON, until they are back.
    const stopped = Date.now();
    // --no-block: the last api waits up to CADFLEET_LB_DEREGISTER_TIMEOUT_MS (15 s) for routing
    // without it, which never comes (the LB keeps its deployed list when no api is live).
    for (const h of ['api-1', 'api-2']) expect(ssh(h, 'sudo', 'systemctl', 'stop', '--no-block', 'cadfleet-api').code).toBe(0);
    let down: Answer | undefined;
    let closing = 0;
    try {
      await until('the LB answering for the stopped apis', async () => {
        const r = await request('GET', '/api/v1/models?limit=1');
        // An api that is closing answers for itself first (503 shutting_down, app.ts): the api's
        // error shape too, but not the LB's refusal this waits for.
        if (r.status === 503 && r.json.code === 'shutting_down') {
          expect(r.headers['retry-after']).toBe('1');
          closing++;
        } else if (r.status === 502 || r.status === 503) down = r;
        return down !== undefined;
      }, 60);
      expect(down!.headers['content-type'], down!.body.toString('utf8')).toBe('application/json');
      expect(down!.json).toMatchObject({ statusCode: down!.status, code: down!.status === 502 ? 'api_unreachable' : 'service_unavailable' });
      if (down!.status === 503) expect(Number(down!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    } finally {
      for (const h of ['api-1', 'api-2']) expect(ssh(h, 'sudo', 'systemctl', 'start', 'cadfleet-api').code).toBe(0);
    }
    let ok = 0;
    await until('the apis answering through the LB again', async () => {
      ok = (await request('GET', '/api/v1/models?limit=1')).status === 200 ? ok + 1 : 0;
      return ok >= 3;
    }, 60);
    console.log(`LB refusals: 413 ${announced.json.code} in ${announced.ms.toFixed(0)} ms; with no api: ${down!.status} ${String(down!.json.code)} (${closing} answered 503 shutting_down by a closing api first); apis back after ${seconds(Date.now() - stopped)}`);
    report.access.push({ check: 'an upload announced at 300 MB (over the LB\'s 200m)', refused: `413 file_too_large, JSON, before any body (${announced.ms.toFixed(0)} ms)` });
    report.access.push({ check: 'both apis stopped behind the LB', refused: `${down!.status} ${String(down!.json.code)}, JSON in the api's error shape; served again when they started` });
  }, 180_000);

  it('sustains a minute of load through the LB (reads, uploads, session hand-outs and streaming) without a failed request', async () => {
    const work = tempDir('cadfleet-rel-');
    const seconds = 60;
    const api = apiLoad(work, { CONCURRENCY: '4', PAUSE_MS: '10', UPLOAD_EVERY: '50', SESSION_EVERY: '25', MODEL_ID: e2e.modelId, MAX_SECONDS: String(seconds) }, seconds + 60);
    const streams = streamLoad(work, { SESSIONS: '4', ACK_DELAY_MS: '20', MAX_SECONDS: String(seconds) }, seconds + 120);
    await Promise.all([api.exited, streams.exited]);
    const traffic = readJson<LoadResult>(path.join(work, 'load.json'));
    const streaming = readJson<StreamResult>(path.join(work, 'streams.json'));
    console.log(`load: ${JSON.stringify({ ...traffic, uploads: traffic.uploads.length })}; streaming: ${JSON.stringify(streaming)}`);
    expect(traffic.failures, JSON.stringify(traffic.byStatus)).toBe(0);
    expect(traffic.errors).toEqual([]);
    expect(traffic.requests).toBeGreaterThan(300);
    expect(streaming.failures, JSON.stringify(streaming)).toBe(0);
    expect(streaming.sessions).toBeGreaterThan(4);
    const states = await settle(traffic.uploads, 180);
    keep(states, traffic.uploads);
    expect([...states.values()].filter((m) => m.state !== 'ready')).toEqual([]);
    expect(states.size).toBe(traffic.uploads.length);
    const k = (kind: string): string => {
      const x = traffic.byKind[kind];
      return x ? `${x.requests} (${Object.entries(x.byStatus).map(([s, n]) => `${n}× ${s}`).join(', ')}); p50 ${x.latencyMs.p50} ms, p99 ${x.latencyMs.p99} ms` : '0';
    };
    report.load.push(
      { measure: 'duration, clients', value: `${traffic.seconds.toFixed(0)} s, 4 API clients (closed loop, 10 ms pause) + 4 streaming viewers`, note: 'one machine: the clients share its 2 cores with the 8 hosts' },
      { measure: 'API requests', value: `${traffic.requests} (${traffic.perSecond}/s)`, note: `p50 ${traffic.latencyMs.p50} ms, p90 ${traffic.latencyMs.p90} ms, p99 ${traffic.latencyMs.p99} ms, max ${traffic.latencyMs.max} ms` },
      { measure: 'reads (GET /api/v1/models)', value: k('read') },
      { measure: 'uploads (STL, 1.4 KB)', value: k('upload'), note: `${states.size} accepted, all converted (ready)` },
      { measure: 'session hand-outs', value: k('session') },
      { measure: 'streaming sessions (complete)', value: `${streaming.sessions}`, note: `${streaming.resumes} resumes, ${streaming.failures} failed` },
      { measure: 'failed requests (5xx or connection error)', value: `${traffic.failures}` },
    );
    report.passed.add('load');
  }, 300_000);

  it('converts faster with two worker hosts than with one, each held to one CPU', async () => {
    // Each worker host held to `cpus` CPUs by a CFS quota on its cgroup (cli/src/local/hosts.ts
    // makes one per host), restored afterwards.
    const quota = (hostName: string, cpus: number): (() => void) => {
      const hostname = id(hostName);
      const period = 100_000;
      const v2 = path.join('/sys/fs/cgroup/cadfleet', hostname, 'cpu.max');
      const v1 = path.join('/sys/fs/cgroup/cpu/cadfleet', hostname);
      if (fs.existsSync(v2)) {
        const was = fs.readFileSync(v2, 'utf8').trim();
        fs.writeFileSync(v2, `${Math.round(cpus * period)} ${period}`);
        return () => fs.writeFileSync(v2, was);
      }
      const was = { quota: fs.readFileSync(path.join(v1, 'cpu.cfs_quota_us'), 'utf8').trim(), period: fs.readFileSync(path.join(v1, 'cpu.cfs_period_us'), 'utf8').trim() };
      fs.writeFileSync(path.join(v1, 'cpu.cfs_period_us'), String(period));
      fs.writeFileSync(path.join(v1, 'cpu.cfs_quota_us'), String(Math.round(cpus * period)));
      return () => {
        fs.writeFileSync(path.join(v1, 'cpu.cfs_quota_us'), was.quota);
        fs.writeFileSync(path.join(v1, 'cpu.cfs_period_us'), was.period);
      };
    };
    const sample = fs.readFileSync(cax('as1-oc-214.stp'));
    const size = 16;
    // The queue is paused while the batch is uploaded, then resumed: the clock runs from the
    // resume to the last model ready, so it measures the workers, not the upload path (the LB
    // admits 5 uploads a second past a burst of 20, slower than two workers convert).
    const connection = new IORedis({ host: ipOf('data'), port: 6379, password: secrets().redisPassword, tls: { ca: caPem() }, maxRetriesPerRequest: 3 });
    // Errors surface in the commands that fail; the connection itself must not crash the run.
    connection.on('error', () => undefined);
    const queue = new Queue(CONVERSION_QUEUE, { prefix: 'cadfleet:bull', connection });
    onTestFinished(async () => {
      await queue.resume();
      await queue.close();
      // BullMQ leaves a connection it was given open: without this it would keep reconnecting
      // (and logging) through the later scenarios that stop the data host.
      connection.disconnect();
    });
    const batch = async (count = size): Promise<{ perMinute: number; span: number; byWorker: Record<string, number> }> => {
      await sleep(5000); // the upload limiter's burst refills
      await queue.pause();
      const answers = await uploadAll(Array.from({ length: count }, (_, i) => ({ name: `batch-${i}.stp`, content: sample })));
      expect(answers.map((x) => x.status)).toEqual(answers.map(() => 201));
      const ids = answers.map((x) => x.json.id!);
      const resumedAt = Date.now();
      await queue.resume();
      const states = await settle(ids, 300);
      const models = ids.map((m) => states.get(m)!);
      expect(models.map((m) => m?.state)).toEqual(ids.map(() => 'ready'));
      // The hosts share this machine's clock.
      const span = (Math.max(...models.map((m) => Date.parse(m.finishedAt!))) - resumedAt) / 1000;
      const byWorker: Record<string, number> = {};
      for (const m of models) byWorker[m.workerHost!.replace(`${NAME}-`, '')] = (byWorker[m.workerHost!.replace(`${NAME}-`, '')] ?? 0) + 1;
      return { perMinute: (count / span) * 60, span, byWorker };
    };
    const workerUp = async (hostName: string): Promise<void> => {
      await until(`${hostName}'s worker answering its health check`, () => ssh(hostName, 'curl', '-sf', '-o', '/dev/null', 'http://127.0.0.1:9464/healthz').code === 0, 120);
      await until(`${hostName}'s worker in the registry`, async () => {
        const r = await request('GET', '/status?format=json');
        return ((r.json as unknown as { nodes?: Array<{ id: string; state: string }> }).nodes ?? []).some((n) => n.id === id(hostName) && n.state === 'active');
      }, 60);
    };
    const cores = os.availableParallelism();
    const runs: Array<{ cpus: number; one: Awaited<ReturnType<typeof batch>>; two: Awaited<ReturnType<typeof batch>> }> = [];
    // One CPU each. The figures are reported, not asserted; the benchmark (`npm run bench --
    // throughput`) measures the scaling at half a CPU each too, where the fleet keeps a core.
    const quotas = [1];
    let stopped = false;
    const undo: Array<() => void> = [];
    try {
      for (const cpus of quotas) {
        for (const w of ['worker-1', 'worker-2']) undo.push(quota(w, cpus));
        await batch(6); // warm-up: both converters warm (worker-2's restarted), the quota in force
        const two = await batch();
        expect(ssh('worker-2', 'sudo', 'systemctl', 'stop', 'cadfleet-worker').code).toBe(0);
        stopped = true;
        const one = await batch();
        expect(Object.keys(one.byWorker)).toEqual(['worker-1']);
        expect(ssh('worker-2', 'sudo', 'systemctl', 'start', 'cadfleet-worker').code).toBe(0);
        stopped = false;
        await workerUp('worker-2');
        for (const u of undo.splice(0).reverse()) u();
        runs.push({ cpus, one, two });
        console.log(`throughput at ${cpus} CPU per worker host: one ${one.perMinute.toFixed(1)}/min (${one.span.toFixed(1)} s), two ${two.perMinute.toFixed(1)}/min (${two.span.toFixed(1)} s, ${JSON.stringify(two.byWorker)}), ${(two.perMinute / one.perMinute).toFixed(2)}x`);
      }
    } finally {
      for (const u of undo.splice(0).reverse()) u();
      if (stopped) ssh('worker-2', 'sudo', 'systemctl', 'start', 'cadfleet-worker');
    }
    // The ceiling: two converters side by side on this machine, no fleet in the way.
    const machine = await converterScaling(cax('as1-oc-214.stp'));
    report.throughput.push(
      { measure: 'one warm converter on this machine (no fleet)', value: `${machine.one.toFixed(1)} conversions/min`, note: `the worker's converter pool, in the test process (Node ${process.version}; the hosts run the release's own Node, which converts faster: compare the ratios)` },
      { measure: 'two warm converters side by side (no fleet)', value: `${machine.two.toFixed(1)} conversions/min, ${machine.ratio.toFixed(2)}x`, note: "what this machine's cores give two converters at once: the ceiling of the fleet's two-worker figure" },
    );
    for (const r of runs) {
      // Both workers take jobs, and two are faster than one. The 1.8x goal is reported, not
      // asserted: on a small machine the fleet's other hosts compete for the same cores.
      expect(Object.keys(r.two.byWorker).sort()).toEqual(['worker-1', 'worker-2']);
      // The ratio is reported, never asserted: a speed is a benchmark's figure, not a test's
      // verdict, and on 2 cores it ranged from 1.05x to 3.69x between clean-clone runs.
      const ratio = r.two.perMinute / r.one.perMinute;
      report.throughput.push(
        { measure: `one worker host (${r.cpus} CPU quota)`, value: `${r.one.perMinute.toFixed(1)} conversions/min`, note: `${size} uploads of as1-oc-214.stp queued while the queue was paused; from its resume to the last ready: ${r.one.span.toFixed(1)} s` },
        {
          measure: `two worker hosts (${r.cpus} CPU quota each)`,
          value: `${r.two.perMinute.toFixed(1)} conversions/min, ${ratio.toFixed(2)}x`,
          note: `${r.two.span.toFixed(1)} s; jobs ${Object.entries(r.two.byWorker).map(([w, n]) => `${w} ${n}`).join(', ')}; goal 1.8x ${ratio > 2.05 ? `met, but above 2x: alone, worker-1 took ${((r.one.span / size) * 1000).toFixed(0)} ms a job against ${((r.two.span / (size / 2)) * 1000).toFixed(0)} ms per host with two, so the one-host run is slowed by something other than the fleet (not yet explained) and this ratio overstates the scaling` : ratio >= 1.8 ? 'met' : `missed (two converters alone on this machine: ${machine.ratio.toFixed(2)}x): ${r.cpus * 2 >= cores - 0.01 ? `the two quotas take all ${cores} cores of this machine, which the api, data and LB hosts and the client share` : 'the api, data and LB hosts and the client share the remaining core'}`}`,
        },
      );
    }
    report.passed.add('throughput');
  }, 900_000);

  it('writes its figures to docs/reliability.md when every scenario passed', () => {
    const missing = SCENARIOS.filter((s) => !report.passed.has(s));
    expect(missing, 'scenarios that did not pass; docs/reliability.md is left as it was').toEqual([]);
    writeReport(path.resolve('docs/reliability.md'));
  });
}
