// The local fleet the fleet benchmarks (api, throughput, operate) run on: the user's default
// fleet `cf`, never another one (tests run their own fleets beside it). Brought up and deployed
// when it is not, with an admin key of its own. Everything goes through the real CLI, as root.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';

/** The only fleet these benchmarks touch (`operate` destroys and rebuilds it). */
export const FLEET = 'cf';
export const STATE = path.join(process.env.CADFLEET_LOCAL_STATE ?? '/var/lib/cadfleet/local', FLEET);
export const CA = path.join(STATE, 'pki/ca.crt');
export const CLI = path.resolve('bin/cadfleet.js');

/** BENCH_QUICK=1: short runs, for checking a benchmark (index.ts marks their sections as such). */
export const QUICK = process.env.BENCH_QUICK === '1';

/** A numeric parameter: BENCH_<NAME> if set, else the quick or the full value. */
export function param(name: string, full: number, quick: number): number {
  const value = process.env[`BENCH_${name}`];
  if (value === undefined || value === '') return QUICK ? quick : full;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`BENCH_${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export const say = (bench: string) => (line: string): void => void process.stderr.write(`bench ${bench}: ${line}\n`);

export interface FleetInfo {
  lb: string;
  /** Addresses by role and index: `api-1`, `worker-2`, ... */
  hosts: Record<string, string>;
  /** Host names (`cf-api-1`) by role and index. */
  names: Record<string, string>;
  key: string;
}

/**
 * Refuses what could touch another fleet or cannot work: not root, or CADFLEET_LOCAL_FLEET
 * naming a fleet other than `cf` (a test fleet must never be benchmarked, let alone destroyed).
 */
export function requireFleetAccess(): void {
  const named = process.env.CADFLEET_LOCAL_FLEET;
  if (named && named !== FLEET) {
    throw new Error(`the fleet benchmarks run on the default local fleet "${FLEET}" only, and CADFLEET_LOCAL_FLEET=${named} is set; unset it (other fleets are left alone)`);
  }
  if (process.getuid?.() !== 0) {
    throw new Error('the fleet benchmarks (api, throughput, operate) need root: the local fleet\'s hosts are containers. Run: sudo npm run bench -- api throughput operate');
  }
}

export interface CliResult {
  stdout: string;
  seconds: number;
}

/**
 * Runs the CLI on fleet `cf` and waits for it; throws with the end of its stderr when it fails.
 * Its stderr is shown when BENCH_VERBOSE=1, so long deploys are not silent then.
 */
export function cadfleet(args: string[], options: { timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CADFLEET_LOCAL_FLEET: FLEET, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr = (stderr + c).slice(-20_000);
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(c);
    });
    const timer = setTimeout(() => child.kill('SIGINT'), options.timeoutMs ?? 20 * 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const seconds = (performance.now() - t0) / 1000;
      if (code === 0) return resolve({ stdout, seconds });
      const tail = stderr.trim().split('\n').slice(-4).join(' / ');
      reject(new Error(`cadfleet ${args.join(' ')} failed (${signal ?? `exit ${code}`} after ${seconds.toFixed(0)} s): ${tail}`));
    });
  });
}

/** The same, synchronously: for clean-up in a signal handler, where nothing async runs any more. */
export function cadfleetSync(args: string[]): number {
  return spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, CADFLEET_LOCAL_FLEET: FLEET }, stdio: ['ignore', 'ignore', 'inherit'], timeout: 120_000 }).status ?? 1;
}

/**
 * Runs `cleanup` if the benchmark is interrupted (Ctrl-C, SIGTERM), where `finally` blocks would
 * not run, then exits; returns the function that removes the handlers.
 */
export function onInterrupt(cleanup: () => void): () => void {
  const handler = (signal: NodeJS.Signals): void => {
    process.stderr.write(`bench: ${signal}, putting the fleet back first\n`);
    try {
      cleanup();
    } finally {
      process.exit(130);
    }
  };
  process.once('SIGINT', handler);
  process.once('SIGTERM', handler);
  return () => {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  };
}

/** Runs a command on hosts (`worker/2`, `worker`) with `cadfleet exec`. */
export const onHosts = (selector: string, command: string[]): Promise<CliResult> => cadfleet(['exec', '--env', 'local', selector, '--', ...command]);

interface Outputs {
  lb: { address: string };
  hosts: Record<string, Array<{ name: string; address: string }>>;
}

export async function fleetOutputs(): Promise<{ lb: string; hosts: Record<string, string>; names: Record<string, string> }> {
  const outputs = JSON.parse((await cadfleet(['outputs', '--env', 'local'])).stdout) as Outputs;
  const hosts: Record<string, string> = {};
  const names: Record<string, string> = {};
  for (const [role, list] of Object.entries(outputs.hosts)) {
    list.forEach((h, i) => {
      hosts[`${role}-${i + 1}`] = h.address;
      names[`${role}-${i + 1}`] = h.name;
    });
  }
  return { lb: outputs.lb.address, hosts, names };
}

/** Agents for the fleet: HTTPS trusting the fleet CA (the LB), plain HTTP (a host's own port). */
export interface Agents {
  https: https.Agent;
  http: http.Agent;
}

export function fleetAgents(keepAlive = true): Agents {
  return {
    https: new https.Agent({ ca: fs.readFileSync(CA), keepAlive, maxSockets: 64 }),
    http: new http.Agent({ keepAlive, maxSockets: 64 }),
  };
}

export function closeAgents(agents: Agents): void {
  agents.https.destroy();
  agents.http.destroy();
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request with node's http(s) (no retries). */
export function call(url: string, options: { agents: Agents; method?: string; headers?: Record<string, string>; body?: Buffer; timeoutMs?: number }): Promise<Reply> {
  const u = new URL(url);
  const secure = u.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(
      u,
      { method: options.method ?? 'GET', headers: options.headers, agent: secure ? options.agents.https : options.agents.http, timeout: options.timeoutMs ?? 60_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer in ${(options.timeoutMs ?? 60_000) / 1000} s`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `probe` is true (errors count as false); throws with `what` at the deadline. */
export async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 120_000, everyMs = 500): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await probe().catch(() => false)) return (performance.now() - t0) / 1000;
    if (performance.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(everyMs);
  }
}

/** The api answers through the LB: 401 without a key comes from an api host (nginx alone answers 5xx). */
export const apiAnswersThroughLb = (lb: string, agents: Agents): Promise<boolean> =>
  call(`https://${lb}/api/v1/models?limit=1`, { agents, timeoutMs: 5000 }).then((r) => r.status === 401);

/**
 * The fleet up and deployed (this working tree's release) with an admin key for project
 * `bench`, kept in the fleet's state. `local up` changes nothing on a running fleet; the deploy
 * of an unchanged tree changes nothing either (it costs its no-change time, about half a minute).
 */
export async function ensureFleet(log: (line: string) => void): Promise<FleetInfo> {
  requireFleetAccess();
  if (!fs.existsSync(path.resolve('dist/cadfleet.js'))) throw new Error('dist/ is missing: run npm run build (scripts/setup.sh does it)');
  log(`fleet ${FLEET}: local up (builds the base image the first time, about a minute)`);
  await cadfleet(['local', 'up']);
  log(`fleet ${FLEET}: deploy of this working tree (no changes when it runs it already)`);
  const deployed = JSON.parse((await cadfleet(['deploy', '--env', 'local', '--json'])).stdout) as { release: { version: string }; changed: number };
  log(`fleet ${FLEET}: runs ${deployed.release.version} (${deployed.changed} change(s) made)`);
  const { lb, hosts, names } = await fleetOutputs();
  const agents = fleetAgents(false);
  try {
    await until('the api answering through the LB', () => apiAnswersThroughLb(lb, agents));
    const keyFile = path.join(STATE, 'bench-key');
    let key = fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : '';
    const valid = async (k: string): Promise<boolean> => (await call(`https://${lb}/api/v1/models?limit=1`, { agents, headers: { authorization: `Bearer ${k}` } })).status === 200;
    if (!key || !(await valid(key))) {
      // A rebuilt fleet has a new database: the old key is gone with it.
      const out = (await cadfleet(['keys', 'create', '--env', 'local', '--project', 'bench', '--admin', '--name', 'bench'])).stdout;
      key = out.trim().split('\n').pop() ?? '';
      if (!(await valid(key))) throw new Error('the new bench API key is refused by the api');
      fs.writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
    }
    return { lb, hosts, names, key };
  } finally {
    closeAgents(agents);
  }
}

/** Multipart body with one file field, as a browser sends it. */
function multipart(file: string): { body: Buffer; type: string } {
  const boundary = `cadfleetbench${Math.random().toString(16).slice(2)}`;
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${path.basename(file)}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    fs.readFileSync(file),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

/**
 * Uploads a file through the LB; the model id. The LB limits uploads per client address
 * (a burst, then a rate): a 429 is waited out and sent again.
 */
export async function upload(fleet: FleetInfo, agents: Agents, file: string): Promise<string> {
  const { body, type } = multipart(file);
  for (let attempt = 0; ; attempt++) {
    // reuse=false: the benchmarks measure conversions, not the reuse of an earlier one.
    const r = await call(`https://${fleet.lb}/api/v1/models?reuse=false`, {
      method: 'POST',
      headers: { authorization: `Bearer ${fleet.key}`, 'content-type': type, 'content-length': String(body.length) },
      body,
      agents,
    });
    if (r.status === 429 && attempt < 20) {
      await sleep(Number(r.headers['retry-after'] ?? 0) * 1000 || 300);
      continue;
    }
    const parsed = JSON.parse(r.body || '{}') as { id?: string; message?: string };
    if (r.status !== 201 || !parsed.id) throw new Error(`upload of ${path.basename(file)} answered ${r.status}: ${parsed.message ?? r.body.slice(0, 200)}`);
    return parsed.id;
  }
}

export interface ModelView {
  id: string;
  state: string;
  error?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  workerHost?: string;
  stats?: { seconds: number; triangles: number; parts: number };
}

/**
 * Waits until every model is ready (a failed one throws) and returns them. Polls the project's
 * list once a second, one request for all, so the polling itself costs the fleet little.
 */
export async function waitReady(fleet: FleetInfo, agents: Agents, ids: string[], timeoutMs = 900_000): Promise<ModelView[]> {
  const deadline = Date.now() + timeoutMs;
  const done = new Map<string, ModelView>();
  for (;;) {
    const auth = { authorization: `Bearer ${fleet.key}` };
    // Newest first: the batch is at the top unless someone else uploads meanwhile.
    const r = await call(`https://${fleet.lb}/api/v1/models?limit=${Math.min(1000, ids.length + 100)}`, { agents, headers: auth });
    const seen = new Map<string, ModelView>();
    if (r.status === 200) for (const m of (JSON.parse(r.body) as { models: ModelView[] }).models) seen.set(m.id, m);
    for (const id of ids) {
      if (done.has(id)) continue;
      let m = seen.get(id);
      if (!m) {
        const one = await call(`https://${fleet.lb}/api/v1/models/${id}`, { agents, headers: auth });
        if (one.status === 200) m = JSON.parse(one.body) as ModelView;
      }
      if (m?.state === 'failed') throw new Error(`model ${id} failed: ${m.error}`);
      if (m?.state === 'ready') done.set(id, m);
    }
    if (done.size === ids.length) return ids.map((id) => done.get(id)!);
    if (Date.now() > deadline) throw new Error(`${ids.length - done.size} of ${ids.length} model(s) not ready within ${timeoutMs / 1000} s`);
    await sleep(1000);
  }
}

/** A worker host's own health endpoint answers once its converter is warm and it takes jobs. */
export const workerReady = (address: string, agents: Agents): Promise<boolean> =>
  call(`http://${address}:9464/healthz`, { agents, timeoutMs: 3000 }).then((r) => r.status === 200);

/**
 * Holds a host of fleet `cf` to `cpus` CPUs with a CFS quota on its cgroup (cgroup v2 cpu.max,
 * or v1 cpu.cfs_quota_us); returns a function that puts the previous setting back.
 */
export function limitCpu(hostname: string, cpus: number): () => void {
  if (!hostname.startsWith(`${FLEET}-`)) throw new Error(`${hostname} is not a host of fleet ${FLEET}`);
  const period = 100_000;
  const quota = String(Math.round(cpus * period));
  const v2 = path.join('/sys/fs/cgroup/cadfleet', hostname, 'cpu.max');
  const v1 = path.join('/sys/fs/cgroup/cpu/cadfleet', hostname);
  if (fs.existsSync(v2)) {
    const before = fs.readFileSync(v2, 'utf8').trim();
    fs.writeFileSync(v2, `${quota} ${period}`);
    return () => fs.writeFileSync(v2, before);
  }
  if (fs.existsSync(path.join(v1, 'cpu.cfs_quota_us'))) {
    const before = { quota: fs.readFileSync(path.join(v1, 'cpu.cfs_quota_us'), 'utf8').trim(), period: fs.readFileSync(path.join(v1, 'cpu.cfs_period_us'), 'utf8').trim() };
    fs.writeFileSync(path.join(v1, 'cpu.cfs_period_us'), String(period));
    fs.writeFileSync(path.join(v1, 'cpu.cfs_quota_us'), quota);
    return () => {
      fs.writeFileSync(path.join(v1, 'cpu.cfs_quota_us'), before.quota);
      fs.writeFileSync(path.join(v1, 'cpu.cfs_period_us'), before.period);
    };
  }
  throw new Error(`no cpu cgroup for ${hostname} (${v2} or ${v1}/cpu.cfs_quota_us): is the fleet up?`);
}

/** CPU seconds a host of fleet `cf` has used so far, everything in it (cgroup v2 cpu.stat, or v1 cpuacct). */
export function hostCpuSeconds(hostname: string): number {
  const v2 = path.join('/sys/fs/cgroup/cadfleet', hostname, 'cpu.stat');
  if (fs.existsSync(v2)) return Number(/^usage_usec (\d+)/m.exec(fs.readFileSync(v2, 'utf8'))?.[1] ?? 0) / 1e6;
  const v1 = path.join('/sys/fs/cgroup/cpuacct/cadfleet', hostname, 'cpuacct.usage');
  if (fs.existsSync(v1)) return Number(fs.readFileSync(v1, 'utf8')) / 1e9;
  throw new Error(`no cpu accounting for ${hostname} (${v2} or ${v1})`);
}

/** Busy share of this machine's CPUs between two readings of /proc/stat. */
export function cpuMeter(): () => number {
  const read = (): { busy: number; total: number } => {
    const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = fields.reduce((a, b) => a + b, 0);
    const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
    return { busy: total - idle, total };
  };
  const start = read();
  return () => {
    const end = read();
    return (end.busy - start.busy) / Math.max(1, end.total - start.total);
  };
}

export const cores = (): number => os.availableParallelism();
