// Shared set-up of the service tests: a private PostgreSQL, Redis and S3 per suite (from
// scripts/local-services.ts), the api and workers as real child processes, and an HTTP client.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { type LocalStack, S3RVER_CREDENTIALS, freePort, startLocalStack } from '../../scripts/local-services';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const MAIN = path.join(ROOT, 'app/src/main.ts');

export const SAMPLES = {
  assembly: path.join(ROOT, 'node_modules/occt-import-js/test/testfiles/cax-if/as1-oc-214.stp'),
  cube: path.join(ROOT, 'node_modules/occt-import-js/test/testfiles/simple-basic-cube/cube.stp'),
  stlBox: path.join(ROOT, 'node_modules/node-stl/test/test_data/box_2x3x4.stl'),
  /** Its header announces fewer triangles than the file holds. */
  stlMalformed: path.join(ROOT, 'node_modules/node-stl/test/test_data/box.stl'),
};

const execFileAsync = promisify(execFile);

/** Settings that make the fleet's timers test-sized. */
export const FAST_ENV: Record<string, string> = {
  CADFLEET_HEARTBEAT_INTERVAL_MS: '500',
  CADFLEET_DEPENDENCY_CHECK_MS: '300',
  CADFLEET_S3_CHECK_MS: '300',
  // The outages these tests make are refusals (a stopped Redis, PostgreSQL or S3), which close
  // the gate at once. A slow check here means CPU: `npm test` runs the app's tests in the
  // background beside the fleet tier, where a check may wait seconds to be scheduled. The gate's
  // handling of slow checks is tested with its own timeout (units.test.ts).
  CADFLEET_DEPENDENCY_TIMEOUT_MS: '5000',
  CADFLEET_JOB_LOCK_MS: '2000',
  CADFLEET_STALLED_INTERVAL_MS: '1000',
  CADFLEET_JOB_BACKOFF_MS: '200',
  CADFLEET_SHUTDOWN_TIMEOUT_MS: '5000',
  CADFLEET_LB_LINGER_MS: '300',
  CADFLEET_RETRY_AFTER_SECONDS: '2',
  CADFLEET_LOG_LEVEL: 'info',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
};

export interface AppProcess {
  role: string;
  pid: number;
  /** The api's base URL. */
  url: string;
  logs(): string;
  alive(): boolean;
  /** Log lines (parsed JSON) that match. */
  logLines(filter?: (line: Record<string, unknown>) => boolean): Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Kills the whole process group (the process and its converter children), as a host dying would. */
  killGroup(signal: NodeJS.Signals): void;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
}

export interface Harness {
  dir: string;
  stack: LocalStack;
  env: Record<string, string>;
  db: pg.Pool;
  start(role: 'api' | 'worker', options?: { env?: Record<string, string>; nodeId?: string; waitReady?: boolean }): Promise<AppProcess>;
  /** Runs `main.ts <args>` to completion (admin commands). */
  run(args: string[], env?: Record<string, string>): Promise<{ stdout: string; stderr: string }>;
  createKey(project: string, admin?: boolean): Promise<string>;
  stop(): Promise<void>;
}

const processes = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of processes) if (child.pid) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
});

export async function startHarness(name: string, options: { tls?: boolean; env?: Record<string, string>; migrate?: boolean } = {}): Promise<Harness> {
  // The test process itself reads S3 (to check what was stored) through the SDK's default chain.
  Object.assign(process.env, S3RVER_CREDENTIALS, { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cadfleet-${name}-`));
  const stack = await startLocalStack({ dir: path.join(dir, 'stack'), tls: options.tls });
  const env: Record<string, string> = {
    ...FAST_ENV,
    ...stack.env,
    CADFLEET_REDIS_PREFIX: `cf-${name}`,
    CADFLEET_WORK_DIR: path.join(dir, 'work'),
    ...options.env,
  };
  const db = new pg.Pool({ connectionString: stack.postgres.adminUrl, max: 3 });
  db.on('error', () => undefined);
  const apps = new Set<AppProcess>();

  const run: Harness['run'] = async (args, extra = {}) => {
    const out = await execFileAsync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...process.env, ...env, ...extra }, timeout: 60_000 });
    return { stdout: out.stdout, stderr: out.stderr };
  };

  const harness: Harness = {
    dir,
    stack,
    env,
    db,
    run,
    async start(role, opts = {}) {
      const port = role === 'api' ? await freePort() : 0;
      const childEnv = {
        ...process.env,
        ...env,
        ...(role === 'api' ? { CADFLEET_HTTP_PORT: String(port), CADFLEET_HTTP_HOST: '127.0.0.1' } : {}),
        ...(opts.nodeId ? { CADFLEET_NODE_ID: opts.nodeId } : {}),
        ...opts.env,
      };
      // detached: its own process group, so a test can kill it together with its converters.
      const child = spawn(process.execPath, ['--import', 'tsx', MAIN, role], { cwd: ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      processes.add(child);
      let text = '';
      child.stdout!.on('data', (d: Buffer) => (text += d.toString('utf8')));
      child.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
        child.once('exit', (code, signal) => {
          processes.delete(child);
          resolve({ code, signal });
        }),
      );
      const logLines = (filter: (l: Record<string, unknown>) => boolean = () => true) =>
        text
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => {
            try {
              return JSON.parse(l) as Record<string, unknown>;
            } catch {
              return {};
            }
          })
          .filter(filter);
      const app: AppProcess = {
        role,
        pid: child.pid!,
        url: `http://127.0.0.1:${port}`,
        logs: () => text,
        alive: () => child.exitCode === null && child.signalCode === null,
        logLines,
        exited,
        killGroup(signal) {
          try {
            process.kill(-child.pid!, signal);
          } catch {
            /* already gone */
          }
        },
        async stop() {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const timer = setTimeout(() => app.killGroup('SIGKILL'), 15_000);
          await exited;
          clearTimeout(timer);
          app.killGroup('SIGKILL'); // converter children, if any outlived it
          apps.delete(app);
        },
      };
      apps.add(app);
      if (opts.waitReady === false) return app;
      const readyMessage = role === 'api' ? 'api listening' : 'worker ready';
      const deadline = Date.now() + 60_000;
      while (!text.includes(readyMessage)) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the ${role} exited while starting:\n${text}`);
        if (Date.now() > deadline) throw new Error(`the ${role} did not start within 60 s:\n${text}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return app;
    },
    async createKey(project, admin = false) {
      const { stdout } = await run(['keys', 'create', '--project', project, ...(admin ? ['--admin'] : [])]);
      const key = stdout.trim().split('\n').pop()!;
      if (!/^cfk_/.test(key)) throw new Error(`keys create printed no key:\n${stdout}`);
      return key;
    },
    async stop() {
      await Promise.all([...apps].map((a) => a.stop()));
      await db.end().catch(() => undefined);
      await stack.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  if (options.migrate !== false) {
    try {
      await run(['migrate']);
    } catch (err) {
      await harness.stop();
      throw err;
    }
  }
  return harness;
}

// ---------------------------------------------------------------------------------------------
// HTTP helpers

export interface ApiClient {
  request(method: string, pathname: string, init?: { body?: RequestInit['body']; headers?: Record<string, string>; key?: string | null }): Promise<Response>;
  json<T = Record<string, unknown>>(method: string, pathname: string, init?: { body?: RequestInit['body']; headers?: Record<string, string>; key?: string | null }): Promise<{ status: number; body: T; headers: Headers }>;
  /** Converted afresh (reuse=false) unless `reuse`: the tests count conversions. */
  upload(file: string, options?: { name?: string; key?: string | null; quality?: string; reuse?: boolean }): Promise<{ status: number; body: Record<string, unknown> }>;
  waitForState(id: string, states: string[], options?: { timeoutMs?: number; onState?: (state: string, body: Record<string, unknown>) => void }): Promise<Record<string, unknown>>;
}

export function apiClient(baseUrl: string, defaultKey: string): ApiClient {
  const request: ApiClient['request'] = (method, pathname, init = {}) => {
    const key = init.key === undefined ? defaultKey : init.key;
    return fetch(`${baseUrl}${pathname}`, {
      method,
      body: init.body,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...init.headers },
    });
  };
  const json: ApiClient['json'] = async (method, pathname, init) => {
    const res = await request(method, pathname, init);
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as never, headers: res.headers };
  };
  return {
    request,
    json,
    async upload(file, options = {}) {
      const form = new FormData();
      if (options.quality) form.append('quality', options.quality);
      form.append('file', new Blob([fs.readFileSync(file)]), options.name ?? path.basename(file));
      const res = await json('POST', options.reuse ? '/api/v1/models' : '/api/v1/models?reuse=false', { body: form, key: options.key });
      return { status: res.status, body: res.body };
    },
    async waitForState(id, states, options = {}) {
      const deadline = Date.now() + (options.timeoutMs ?? 60_000);
      let last: Record<string, unknown> = {};
      let lastState = '';
      for (;;) {
        const res = await json('GET', `/api/v1/models/${id}`);
        last = res.body;
        if (res.status === 200 && last.state !== lastState) {
          lastState = String(last.state);
          options.onState?.(lastState, last);
        }
        if (res.status === 200 && states.includes(String(last.state))) return last;
        if (Date.now() > deadline) throw new Error(`model ${id} did not reach ${states.join('|')} in time; last: ${JSON.stringify(last)}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value. */
export async function eventually<T>(fn: () => Promise<T | undefined | false | null>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
