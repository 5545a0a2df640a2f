// Private PostgreSQL, Redis and S3 (s3rver) instances on this machine, for the service tests,
// the pipeline benchmark and scripts/serve-local.ts. Each instance lives in a directory of its
// own, listens on 127.0.0.1 only and is stopped by its `stop()` (or killed when this process exits).
//
// Needs the apt packages postgresql, redis-server and openssl (TLS), and s3rver from npm.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

const require = createRequire(import.meta.url);

export class MissingToolError extends Error {
  override name = 'MissingToolError';
}

/** A free TCP port on 127.0.0.1 (released before use, so only probably free). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    const candidate = path.join(dir, name);
    if (dir && fs.existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** PostgreSQL server binaries: Debian keeps them in /usr/lib/postgresql/<major>/bin, off PATH. */
export function pgBin(name: 'initdb' | 'postgres'): string {
  const root = '/usr/lib/postgresql';
  const majors = fs.existsSync(root) ? fs.readdirSync(root).filter((d) => /^\d+$/.test(d)).sort((a, b) => Number(b) - Number(a)) : [];
  for (const major of majors) {
    const candidate = path.join(root, major, 'bin', name);
    if (fs.existsSync(candidate)) return candidate;
  }
  const found = onPath(name);
  if (found) return found;
  throw new MissingToolError(`${name} not found: install the apt package postgresql (apt-get install -y postgresql)`);
}

function tool(name: string, aptPackage: string): string {
  const found = onPath(name);
  if (!found) throw new MissingToolError(`${name} not found: install the apt package ${aptPackage} (apt-get install -y ${aptPackage})`);
  return found;
}

// Children still running when this process exits are killed, so a crashed test run leaves no
// database or Redis behind.
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

interface Started {
  child: ChildProcess;
  output: () => string;
}

function startProcess(
  command: string,
  args: string[],
  options: { uid?: number; gid?: number; cwd?: string; env?: NodeJS.ProcessEnv; ready: RegExp; timeoutMs?: number; logFile: string; what: string },
): Promise<Started> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { uid: options.uid, gid: options.gid, cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    running.add(child);
    const log = fs.createWriteStream(options.logFile, { flags: 'a' });
    let text = '';
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`${options.what} did not start within ${options.timeoutMs ?? 30_000} ms:\n${text.slice(-2000)}`)), options.timeoutMs ?? 30_000);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      if (!log.writableEnded) log.write(chunk);
      if (text.length < 64 * 1024) text += chunk.toString('utf8');
      if (!settled && options.ready.test(text)) {
        settled = true;
        clearTimeout(timer);
        resolve({ child, output: () => text });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('error', (err) => fail(new Error(`${options.what} could not be started: ${err.message}`)));
    // 'exit' can come before the last output does: the log ends once the pipes have closed.
    child.once('close', () => log.end());
    child.once('exit', (code, signal) => {
      running.delete(child);
      fail(new Error(`${options.what} exited (${signal ?? `code ${code}`}) while starting:\n${text.slice(-2000)}`));
    });
  });
}

async function stopProcess(child: ChildProcess, signal: NodeJS.Signals, timeoutMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  await exited;
  clearTimeout(timer);
  running.delete(child);
}

// ---------------------------------------------------------------------------------------------
// TLS: a throwaway CA and a server certificate for 127.0.0.1 and localhost.

export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export function makeTlsFiles(dir: string): TlsFiles {
  const openssl = tool('openssl', 'openssl');
  fs.mkdirSync(dir, { recursive: true });
  const f = (name: string): string => path.join(dir, name);
  const run = (args: string[]): void => void execFileSync(openssl, args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '3', '-subj', '/CN=cadfleet local CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  run(['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']);
  fs.writeFileSync(f('server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n');
  run(['x509', '-req', '-in', f('server.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('server.crt'), '-days', '3', '-extfile', f('server.ext')]);
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key') };
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

export interface PostgresInstance {
  port: number;
  database: string;
  user: string;
  password: string;
  /** The service's CADFLEET_DATABASE_URL (sslmode included). */
  url: string;
  /** Superuser URL, for tests that change roles. */
  adminUrl: string;
  caFile?: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The postgres OS user must be able to walk down to its data directory; mkdtemp makes 0700
 * directories. Directories under the temp dir or under `ownedRoot` are opened (search
 * permission only, no listing); any other closed directory on the way is an error.
 */
function ensureTraversable(target: string, ownedRoot?: string): void {
  const ours = [fs.realpathSync(os.tmpdir()), ...(ownedRoot ? [fs.realpathSync(ownedRoot)] : [])];
  for (let dir = fs.realpathSync(target); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const mode = fs.statSync(dir).mode;
    if (mode & 0o001) continue;
    if (ours.some((root) => dir === root || dir.startsWith(`${root}${path.sep}`))) fs.chmodSync(dir, mode | 0o711);
    else throw new Error(`PostgreSQL runs as the postgres user, who cannot enter ${dir}; put the data directory under ${os.tmpdir()}`);
  }
}

export async function startPostgres(options: {
  dir: string;
  port?: number;
  tls?: TlsFiles;
  database?: string;
  user?: string;
  password?: string;
  /** A directory of ours above `dir` that may be opened for the postgres user. */
  ownedRoot?: string;
}): Promise<PostgresInstance> {
  const initdb = pgBin('initdb');
  const postgres = pgBin('postgres');
  const port = options.port ?? (await freePort());
  const database = options.database ?? 'cadfleet';
  const user = options.user ?? 'cadfleet';
  const password = options.password ?? 'cadfleet-local';
  const superPassword = 'postgres-local';
  const dataDir = path.join(options.dir, 'data');
  const runDir = path.join(options.dir, 'run');
  // PostgreSQL refuses to run as root: as root, run it as the postgres OS user.
  let uid: number | undefined;
  let gid: number | undefined;
  if (process.getuid?.() === 0) {
    try {
      uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    } catch {
      throw new MissingToolError('the postgres OS user does not exist: install the apt package postgresql');
    }
  }
  fs.mkdirSync(options.dir, { recursive: true });
  if (uid !== undefined) ensureTraversable(options.dir, options.ownedRoot);
  fs.mkdirSync(runDir, { recursive: true });
  const pwFile = path.join(options.dir, 'pwfile');
  fs.writeFileSync(pwFile, `${superPassword}\n`, { mode: 0o600 });
  let sslArgs: string[] = [];
  if (options.tls) {
    // The key must belong to the server's user and be private, or PostgreSQL refuses it.
    const cert = path.join(options.dir, 'server.crt');
    const key = path.join(options.dir, 'server.key');
    fs.copyFileSync(options.tls.certFile, cert);
    fs.copyFileSync(options.tls.keyFile, key);
    fs.chmodSync(key, 0o600);
    if (uid !== undefined && gid !== undefined) {
      fs.chownSync(cert, uid, gid);
      fs.chownSync(key, uid, gid);
    }
    sslArgs = ['-c', 'ssl=on', '-c', `ssl_cert_file=${cert}`, '-c', `ssl_key_file=${key}`];
  }
  if (uid !== undefined && gid !== undefined) {
    fs.chownSync(options.dir, uid, gid);
    fs.chownSync(runDir, uid, gid);
    fs.chownSync(pwFile, uid, gid);
  }
  const env = { ...process.env, LC_ALL: 'C', LANG: 'C' };
  if (!fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    execFileSync(
      initdb,
      ['-D', dataDir, '-U', 'postgres', '--pwfile', pwFile, '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--no-locale', '--no-sync'],
      { uid, gid, env, stdio: 'pipe', cwd: options.dir },
    );
  }
  const args = [
    '-D', dataDir, '-p', String(port), '-k', runDir,
    '-c', 'listen_addresses=127.0.0.1',
    // Throwaway data: durability off for speed.
    '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off',
    '-c', 'max_connections=200', '-c', 'log_min_messages=warning',
    ...sslArgs,
  ];
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = await startProcess(postgres, args, {
      uid, gid, env, cwd: options.dir, ready: /ready to accept connections/, logFile: path.join(path.dirname(options.dir), `${path.basename(options.dir)}.log`), what: 'PostgreSQL',
    });
    child = started.child;
  };
  await start();
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password: superPassword, database: 'postgres' });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
    if (exists.rowCount === 0) {
      await admin.query(`CREATE ROLE ${pg.escapeIdentifier(user)} LOGIN PASSWORD ${pg.escapeLiteral(password)}`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)} OWNER ${pg.escapeIdentifier(user)}`);
    }
  } finally {
    await admin.end();
  }
  const sslmode = options.tls ? `verify-full&sslrootcert=${encodeURIComponent(options.tls.caFile)}` : 'disable';
  return {
    port,
    database,
    user,
    password,
    url: `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${database}?sslmode=${sslmode}`,
    adminUrl: `postgres://postgres:${superPassword}@127.0.0.1:${port}/${database}`,
    caFile: options.tls?.caFile,
    start,
    stop: async () => {
      // SIGINT: PostgreSQL's fast shutdown.
      if (child) await stopProcess(child, 'SIGINT');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Redis

export interface RedisInstance {
  port: number;
  /** The service's CADFLEET_REDIS_URL. */
  url: string;
  caFile?: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(options: { dir: string; port?: number; tls?: TlsFiles; maxmemoryPolicy?: string }): Promise<RedisInstance> {
  const server = tool('redis-server', 'redis-server');
  const port = options.port ?? (await freePort());
  fs.mkdirSync(options.dir, { recursive: true });
  const portArgs = options.tls
    ? ['--port', '0', '--tls-port', String(port), '--tls-cert-file', options.tls.certFile, '--tls-key-file', options.tls.keyFile, '--tls-ca-cert-file', options.tls.caFile, '--tls-auth-clients', 'no']
    : ['--port', String(port)];
  const args = [
    ...portArgs,
    '--bind', '127.0.0.1', '--protected-mode', 'no', '--dir', options.dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', '',
    '--maxmemory-policy', options.maxmemoryPolicy ?? 'noeviction',
  ];
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = await startProcess(server, args, { ready: /Ready to accept connections/, logFile: path.join(options.dir, 'redis.log'), what: 'Redis' });
    child = started.child;
  };
  await start();
  return {
    port,
    url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`,
    caFile: options.tls?.caFile,
    start,
    stop: async () => {
      if (child) await stopProcess(child, 'SIGTERM');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// S3 (s3rver, path-style)

export interface S3Instance {
  port: number;
  endpoint: string;
  buckets: string[];
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const S3RVER_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' };

export async function startS3(options: { dir: string; port?: number; buckets: string[] }): Promise<S3Instance> {
  let bin: string;
  try {
    bin = path.join(path.dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  } catch {
    throw new MissingToolError('s3rver not found: run npm ci (it is a devDependency)');
  }
  const port = options.port ?? (await freePort());
  fs.mkdirSync(options.dir, { recursive: true });
  // s3rver signs ListObjectsV2 continuation tokens with DES, which OpenSSL 3 refuses by default:
  // without the legacy provider any listing longer than one page answers 500.
  const args = ['--openssl-legacy-provider', bin, '-d', options.dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--no-vhost-buckets', ...options.buckets.flatMap((b) => ['--configure-bucket', b])];
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const started = await startProcess(process.execPath, args, { ready: /S3rver listening/, logFile: path.join(path.dirname(options.dir), 's3rver.log'), what: 's3rver' });
    child = started.child;
  };
  await start();
  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    buckets: options.buckets,
    start,
    stop: async () => {
      if (child) await stopProcess(child, 'SIGTERM');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// All three, and the environment that points the service at them.

export interface LocalStack {
  dir: string;
  postgres: PostgresInstance;
  redis: RedisInstance;
  s3: S3Instance;
  tls?: TlsFiles;
  /** CADFLEET_* (and AWS_*) variables for the api and worker processes. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export const LOCAL_BUCKETS = { uploads: 'cadfleet-uploads', models: 'cadfleet-models' };

/**
 * Starts PostgreSQL, Redis and s3rver under `dir`. With `tls`, PostgreSQL and Redis speak TLS
 * only through a local CA, and the service connects with sslmode=verify-full and rediss://.
 */
export async function startLocalStack(options: { dir: string; tls?: boolean; maxmemoryPolicy?: string }): Promise<LocalStack> {
  fs.mkdirSync(options.dir, { recursive: true });
  const tls = options.tls ? makeTlsFiles(path.join(options.dir, 'tls')) : undefined;
  const started: Array<{ stop(): Promise<void> }> = [];
  try {
    const [postgres, redis, s3] = await Promise.all([
      startPostgres({ dir: path.join(options.dir, 'postgres'), tls, ownedRoot: options.dir }).then((x) => (started.push(x), x)),
      startRedis({ dir: path.join(options.dir, 'redis'), tls, maxmemoryPolicy: options.maxmemoryPolicy }).then((x) => (started.push(x), x)),
      startS3({ dir: path.join(options.dir, 's3', 'data'), buckets: [LOCAL_BUCKETS.uploads, LOCAL_BUCKETS.models] }).then((x) => (started.push(x), x)),
    ]);
    const env: Record<string, string> = {
      CADFLEET_DATABASE_URL: postgres.url,
      CADFLEET_REDIS_URL: redis.url,
      ...(redis.caFile ? { CADFLEET_REDIS_CA_FILE: redis.caFile } : {}),
      CADFLEET_S3_ENDPOINT: s3.endpoint,
      CADFLEET_S3_FORCE_PATH_STYLE: 'true',
      CADFLEET_S3_UPLOADS_BUCKET: LOCAL_BUCKETS.uploads,
      CADFLEET_S3_MODELS_BUCKET: LOCAL_BUCKETS.models,
      AWS_REGION: 'us-east-1',
      ...S3RVER_CREDENTIALS,
    };
    return {
      dir: options.dir,
      postgres,
      redis,
      s3,
      tls,
      env,
      async stop() {
        await Promise.all([postgres.stop(), redis.stop(), s3.stop()]);
      },
    };
  } catch (err) {
    await Promise.all(started.map((s) => s.stop().catch(() => undefined)));
    throw err;
  }
}
