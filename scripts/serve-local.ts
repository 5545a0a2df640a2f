// Runs the whole service on this one machine: PostgreSQL, Redis and an S3 server (s3rver) of
// its own, migrations, the api (which also serves the viewer), a worker and a streamer; creates
// an admin API key, uploads a real STEP sample through the API, waits until it is converted and
// prints the viewer and status page URLs and the key.
//
//   node --import tsx scripts/serve-local.ts [--port 8080] [--stream-port 8090] [--host 127.0.0.1] [--exit] [--no-install]
//
// Without an LB the api hands out the streamer's own ws:// address (CADFLEET_STREAM_URL_MODE=direct).
//
// Without --exit it keeps running until Ctrl-C (SIGINT) or SIGTERM, then stops everything.
// Missing apt packages (postgresql, redis-server, openssl) are installed when run as root.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import WebSocket from 'ws';
import { type LocalStack, MissingToolError, pgBin, startLocalStack } from './local-services';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN = path.join(ROOT, 'app/src/main.ts');
const SAMPLE = path.join(ROOT, 'node_modules/occt-import-js/test/testfiles/cax-if/as1-oc-214.stp');

interface Options {
  port: number;
  streamPort: number;
  host: string;
  dir: string;
  exit?: boolean;
  install: boolean;
}

const say = (line: string): void => void process.stderr.write(`serve-local: ${line}\n`);

function hasTool(name: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => dir && fs.existsSync(path.join(dir, name)));
}

/** apt packages the local services need, installed only when missing (and only as root). */
function ensurePackages(install: boolean): void {
  const missing: string[] = [];
  try {
    pgBin('postgres');
    pgBin('initdb');
  } catch {
    missing.push('postgresql');
  }
  if (!hasTool('redis-server')) missing.push('redis-server');
  if (missing.length === 0) return;
  if (!install || process.getuid?.() !== 0 || !hasTool('apt-get')) {
    throw new MissingToolError(`missing apt packages: ${missing.join(' ')}; install them with: apt-get install -y ${missing.join(' ')}`);
  }
  say(`installing ${missing.join(', ')} with apt-get`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const aptInstall = (): void => void execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { stdio: 'inherit', env });
  try {
    aptInstall();
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'inherit', env });
    aptInstall();
  }
}

const VIEWER_DIR = path.join(ROOT, 'dist/viewer');

function ensureBuilt(): void {
  // The worker runs the converter from dist/ (built by npm ci's prepare step), the api serves dist/viewer.
  if (fs.existsSync(path.join(ROOT, 'dist/cadfleet-convert.js')) && fs.existsSync(path.join(VIEWER_DIR, 'index.html'))) return;
  say('building dist/ (npm run build)');
  execFileSync(process.execPath, [path.join(ROOT, 'scripts/build.mjs')], { cwd: ROOT, stdio: 'inherit' });
}

async function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

function startRole(role: 'api' | 'worker' | 'streamer', env: NodeJS.ProcessEnv, logFile: string): ChildProcess {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, role], { cwd: ROOT, env, stdio: ['ignore', log, log] });
  fs.closeSync(log);
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, child?: ChildProcess, logFile?: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(`${what}: the process exited; its log ${logFile}:\n${logFile ? fs.readFileSync(logFile, 'utf8').slice(-3000) : ''}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs / 1000} s${logFile ? `; see ${logFile}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Streams a model once through the api and the streamer, as the viewer does; returns what came. */
async function streamOnce(base: string, key: string, modelId: string): Promise<{ node: string; parts: number; frames: number; bytes: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${base}/api/v1/models/${modelId}/sessions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{}' });
  const session = (await res.json()) as { streamUrl: string; node: string; message?: string };
  if (res.status !== 201) throw new Error(`the api refused a streaming session (${res.status}): ${session.message}`);
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(session.streamUrl);
    let frames = 0;
    let bytes = 0;
    let parts = 0;
    ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', protocol: 1, have: [] })));
    ws.on('message', (data: Buffer, binary) => {
      if (!binary) {
        const m = JSON.parse(data.toString()) as { type: string; sending?: string[]; message?: string };
        if (m.type === 'manifest') parts = m.sending?.length ?? 0;
        if (m.type === 'error') reject(new Error(`the streamer refused the session: ${m.message}`));
        return;
      }
      frames++;
      bytes += data.length;
      ws.send(JSON.stringify({ type: 'ack', frames }));
    });
    ws.on('error', reject);
    ws.on('close', (code) =>
      code === 1000 ? resolve({ node: session.node, parts, frames, bytes, ms: Math.round(performance.now() - started) }) : reject(new Error(`the stream closed with ${code}`)),
    );
  });
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await exited;
  clearTimeout(timer);
}

async function main(options: Options): Promise<void> {
  ensurePackages(options.install);
  ensureBuilt();
  if (!(await portFree(options.host, options.port))) {
    throw new Error(`port ${options.port} on ${options.host} is in use; choose another with --port`);
  }
  if (!(await portFree(options.host, options.streamPort))) {
    throw new Error(`port ${options.streamPort} on ${options.host} is in use; choose another with --stream-port`);
  }
  fs.rmSync(options.dir, { recursive: true, force: true });
  fs.mkdirSync(options.dir, { recursive: true });

  let stack: LocalStack | undefined;
  let api: ChildProcess | undefined;
  let worker: ChildProcess | undefined;
  let streamer: ChildProcess | undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> =>
    (stopping ??= (async () => {
      await Promise.all([stopChild(api), stopChild(worker), stopChild(streamer)]);
      await stack?.stop();
    })());

  // From here on a signal stops whatever has started so far: nothing is left running.
  const onSignal = (signal: NodeJS.Signals): void => {
    say(`${signal}: stopping`);
    void stopAll().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    say(`starting PostgreSQL, Redis and s3rver under ${options.dir}`);
    stack = await startLocalStack({ dir: path.join(options.dir, 'stack') });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...stack.env,
      CADFLEET_HTTP_HOST: options.host,
      CADFLEET_HTTP_PORT: String(options.port),
      CADFLEET_WORK_DIR: path.join(options.dir, 'work'),
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      // Streaming on one machine: a token secret for this run, stream URLs straight to the
      // streamer, and the viewer served by the api.
      CADFLEET_STREAM_TOKEN_SECRET: randomBytes(32).toString('base64url'),
      CADFLEET_STREAM_URL_MODE: 'direct',
      CADFLEET_VIEWER_DIR: VIEWER_DIR,
    };
    const run = (args: string[]): string => execFileSync(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env, encoding: 'utf8' });

    say('applying database migrations');
    run(['migrate']);
    const apiLog = path.join(options.dir, 'api.log');
    const workerLog = path.join(options.dir, 'worker.log');
    const streamerLog = path.join(options.dir, 'streamer.log');
    const localHost = options.host === '0.0.0.0' ? '127.0.0.1' : options.host;
    api = startRole('api', env, apiLog);
    worker = startRole('worker', env, workerLog);
    streamer = startRole(
      'streamer',
      {
        ...env,
        CADFLEET_STREAM_PORT: String(options.streamPort),
        CADFLEET_STREAM_CACHE_DIR: path.join(options.dir, 'stream-cache'),
        ...(options.host === '0.0.0.0' ? {} : { CADFLEET_ADVERTISE_URL: `http://${options.host}:${options.streamPort}` }),
      },
      streamerLog,
    );
    const base = `http://${localHost}:${options.port}`;
    await waitFor('the api to become ready', async () => (await fetch(`${base}/readyz`)).ok, 60_000, api, apiLog);
    await waitFor('the worker to start', async () => fs.readFileSync(workerLog, 'utf8').includes('"worker ready"'), 60_000, worker, workerLog);
    await waitFor('the streamer to start', async () => (await fetch(`http://${localHost}:${options.streamPort}/healthz`)).ok, 60_000, streamer, streamerLog);

    const key = run(['keys', 'create', '--project', 'demo', '--admin', '--name', 'serve-local']).trim().split('\n').pop()!;
    say(`uploading ${path.relative(ROOT, SAMPLE)} through the API`);
    const form = new FormData();
    form.append('file', new Blob([fs.readFileSync(SAMPLE)]), path.basename(SAMPLE));
    const created = await fetch(`${base}/api/v1/models`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form });
    const model = (await created.json()) as { id: string; state: string; message?: string };
    if (created.status !== 201) throw new Error(`the upload was refused (${created.status}): ${model.message}`);
    let state = model.state;
    let result: { state: string; error?: string; stats?: { triangles: number; parts: number; seconds: number }; workerHost?: string } = { state };
    await waitFor(
      'the sample conversion',
      async () => {
        result = (await (await fetch(`${base}/api/v1/models/${model.id}`, { headers: { authorization: `Bearer ${key}` } })).json()) as typeof result;
        if (result.state !== state) say(`model ${model.id}: ${(state = result.state)}`);
        return result.state === 'ready' || result.state === 'failed';
      },
      120_000,
      worker,
      workerLog,
    );
    if (result.state !== 'ready') throw new Error(`the sample conversion failed: ${result.error}`);
    const streamed = await streamOnce(base, key, model.id);

    const lines = [
      '',
      `cadfleet is running on this machine (api + worker + streamer, PostgreSQL, Redis and S3 under ${options.dir}).`,
      `Viewer:       ${base}/   (paste the key below; upload, watch the conversion, View streams the model)`,
      `Sample model: ${base}/api/v1/models/${model.id}  (${result.stats?.parts} parts, ${result.stats?.triangles} triangles, converted in ${result.stats?.seconds} s on ${result.workerHost})`,
      `Streamed:     ${streamed.parts} parts in ${streamed.frames} frames (${Math.round(streamed.bytes / 1024)} KB) from ${streamed.node} in ${streamed.ms} ms`,
      `Download:     curl -H "Authorization: Bearer $KEY" -o model.glb ${base}/api/v1/models/${model.id}/files/model.glb`,
      `Logs:         ${apiLog}  ${workerLog}  ${streamerLog}`,
      `Status page:  ${base}/status   (browser: any user name, the key as password; or curl -H "Authorization: Bearer $KEY" '${base}/status?format=json')`,
      options.exit ? 'Stopping again (--exit).' : 'Press Ctrl-C to stop everything.',
      'Admin API key (KEY):',
      key,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);

    if (options.exit) {
      await stopAll();
      return;
    }
    // Runs until a signal (handled above) or until the api dies.
    await new Promise<void>((resolve) => {
      api!.once('exit', (code, signal) => {
        say(`the api exited (${signal ?? `code ${code}`}); see ${apiLog}`);
        resolve();
      });
    });
    await stopAll();
  } catch (err) {
    await stopAll().catch(() => undefined);
    throw err;
  }
}

const port = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError(`--port must be a port number, got ${JSON.stringify(value)}.`);
  return n;
};

const cmd = new Command('serve-local')
  .description('Run the cadfleet service (api + worker + streamer with PostgreSQL, Redis and S3) on this machine and convert a sample.')
  .option('--port <port>', 'api port (and the viewer)', port, 8080)
  .option('--stream-port <port>', 'streamer port (WebSocket)', port, 8090)
  .option('--host <address>', 'api listen address', '127.0.0.1')
  .option('--dir <dir>', 'where the services keep their data and logs (wiped at start)', path.join(os.tmpdir(), 'cadfleet-serve-local'))
  .option('--exit', 'stop everything after the sample is converted')
  .option('--no-install', 'never run apt-get; fail if postgresql or redis-server is missing')
  .action(async (opts: Options) => {
    await main(opts);
  });

cmd.parseAsync(process.argv).then(
  () => process.exit(0),
  (err: unknown) => {
    say(`failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
