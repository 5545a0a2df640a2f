// Streamer processes for the tests and the benchmark, beside the harness's api and workers
// (test/service/harness.ts starts those): real `main.ts streamer` processes on free ports.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../../scripts/local-services';
import { type Harness, MAIN, ROOT } from '../service/harness';

/** Stream settings every process of a test fleet shares (api and streamers). */
export const STREAM_ENV: Record<string, string> = {
  CADFLEET_STREAM_TOKEN_SECRET: 'test-stream-secret-0123456789abcdef-0123456789',
  // No LB in tests: the api hands out the streamer's own ws:// address.
  CADFLEET_STREAM_URL_MODE: 'direct',
  CADFLEET_DRAIN_TIMEOUT_MS: '3000',
  CADFLEET_STREAM_IDLE_TIMEOUT_MS: '60000',
  CADFLEET_STREAM_HELLO_TIMEOUT_MS: '5000',
  CADFLEET_STREAM_TOKEN_TTL_MS: '60000',
};

export interface StreamerProcess {
  nodeId: string;
  port: number;
  pid: number;
  logs(): string;
  alive(): boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  signal(signal: NodeJS.Signals): void;
  /** SIGTERM and wait for the exit. */
  stop(): Promise<void>;
  health(): Promise<{ state: string; sessions: number }>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of children) if (child.pid) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
});

/**
 * `bundle` runs dist/cadfleet-service.js (what a release runs, built by `npm run build`)
 * instead of the TypeScript sources through tsx, for memory figures that hold in production.
 */
export async function startStreamer(h: Harness, nodeId: string, env: Record<string, string> = {}, options: { bundle?: boolean } = {}): Promise<StreamerProcess> {
  const port = await freePort();
  const entry = options.bundle ? [path.join(ROOT, 'dist/cadfleet-service.js')] : ['--import', 'tsx', MAIN];
  const child = spawn(process.execPath, [...entry, 'streamer'], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...h.env,
      CADFLEET_NODE_ID: nodeId,
      CADFLEET_HTTP_HOST: '127.0.0.1',
      CADFLEET_STREAM_PORT: String(port),
      CADFLEET_ADVERTISE_URL: `http://127.0.0.1:${port}`,
      CADFLEET_STREAM_CACHE_DIR: path.join(h.dir, `stream-cache-${nodeId}`),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString('utf8')));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString('utf8')));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  const alive = () => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + 60_000;
  while (!text.includes('streamer listening')) {
    if (!alive()) throw new Error(`streamer ${nodeId} exited while starting:\n${text}`);
    if (Date.now() > deadline) throw new Error(`streamer ${nodeId} did not start within 60 s:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    nodeId,
    port,
    pid: child.pid!,
    logs: () => text,
    alive,
    exited,
    signal(signal) {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* gone */
      }
    },
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
    async health() {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      return (await res.json()) as { state: string; sessions: number };
    },
  };
}
