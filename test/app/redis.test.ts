// Redis clients against a real redis-server (TLS through a local CA, ACL users as ElastiCache
// has them): an IAM-style client AUTHs with whatever its token source holds when it connects,
// so a reconnect after the password changed uses the new one, for BullMQ's duplicated
// connections too. A client with a fixed password, the control, does not come back.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisConfig } from '../../app/src/shared/config';
import { createRedis } from '../../app/src/shared/redis';
import type { TokenSource } from '../../app/src/shared/redis-iam';
import { type RedisInstance, makeTlsFiles, startRedis } from '../../scripts/local-services';

const USER = 'cadfleet-test-app';
let dir: string;
let server: RedisInstance;
let ca: string;
let admin: Redis;
const opened: Array<{ disconnect(): void }> = [];

/** A token source whose token the test sets: what a token cache holds between renewals. */
function settableTokens(token: string): TokenSource & { token: string } {
  return {
    token,
    current() {
      return this.token;
    },
  };
}

const iamConfig = (): RedisConfig => ({
  url: `rediss://${USER}@127.0.0.1:${server.port}`,
  caFile: path.join(dir, 'tls', 'ca.crt'),
  prefix: 'cf-iam-test',
  auth: { mode: 'iam', cacheId: 'cadfleet-test', user: USER, region: 'us-east-1', serverless: false },
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/** `promise`, or an error after `ms`: a client that cannot authenticate waits for Redis forever. */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** ElastiCache rotates nothing in place: a new token is a new password and the old one stops working. */
async function rotate(tokens: { token: string } | undefined, next: string): Promise<void> {
  if (tokens) tokens.token = next;
  await admin.call('ACL', 'SETUSER', USER, 'resetpass', `>${next}`);
  // What ElastiCache does after 12 hours, and what a network blip or failover does any time.
  await admin.call('CLIENT', 'KILL', 'USER', USER);
}

/** Failed AUTHs as the app user since the last ACL LOG RESET: each is a connection that tried a stale token. */
async function authFailures(): Promise<number> {
  const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
  return entries
    .map((flat) => Object.fromEntries(Array.from({ length: flat.length / 2 }, (_, i) => [String(flat[2 * i]), flat[2 * i + 1]])))
    .filter((e) => e.reason === 'auth' && e.username === USER)
    .reduce((n, e) => n + Number(e.count), 0);
}

const clientsOfUser = async (): Promise<string[]> => ((await admin.call('CLIENT', 'LIST')) as string).split('\n').filter((l) => l.includes(` user=${USER} `));

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-redis-auth-'));
  const tls = makeTlsFiles(path.join(dir, 'tls'));
  ca = fs.readFileSync(tls.caFile, 'utf8');
  server = await startRedis({ dir: path.join(dir, 'redis'), tls });
  // As on ElastiCache: the default user is off and every client signs in as a named user.
  const bootstrap = new Redis(server.url, { tls: { ca } });
  await bootstrap.call('ACL', 'SETUSER', 'cadfleet-test-admin', 'on', '>admin-password', '~*', '&*', '+@all');
  bootstrap.disconnect();
  admin = new Redis(server.url, { tls: { ca }, username: 'cadfleet-test-admin', password: 'admin-password' });
  await admin.call('ACL', 'SETUSER', 'default', 'off');
});

beforeEach(async () => {
  await admin.call('ACL', 'LOG', 'RESET');
});

afterEach(async () => {
  for (const c of opened.splice(0)) c.disconnect();
  await admin.call('ACL', 'DELUSER', USER);
});

afterAll(async () => {
  admin?.disconnect();
  await server?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

describe('Redis clients with IAM-style token authentication', () => {
  it('AUTH as the URL user with the current token, and after a forced reconnect with the new one', async () => {
    await admin.call('ACL', 'SETUSER', USER, 'reset', 'on', '>token-1', '~*', '&*', '+@all');
    const tokens = settableTokens('token-1');
    const client = createRedis(iamConfig(), 'worker', 'iam-test', tokens);
    opened.push(client);
    expect(await client.call('ACL', 'WHOAMI')).toBe(USER);
    const firstId = await client.client('ID');

    await rotate(tokens, 'token-2');
    // The old token is refused now, so a client that came back authenticated with the new one.
    const probe = admin.duplicate();
    opened.push(probe);
    await expect(probe.call('AUTH', USER, 'token-1')).rejects.toThrow(/WRONGPASS/);
    await expect(probe.call('AUTH', USER, 'token-2')).resolves.toBe('OK');

    const secondId = await until('a reconnect', async () => {
      const id = await client.client('ID');
      return id !== firstId ? id : undefined;
    });
    expect(secondId).not.toBe(firstId);
    expect(await client.call('ACL', 'WHOAMI')).toBe(USER);
    // The probe's deliberate one only: the client never tried a stale or empty password.
    expect(await authFailures()).toBe(1);
  });

  it('gives duplicates (BullMQ blocking connections) the same token source: a job queued after the rotation is processed', async () => {
    await admin.call('ACL', 'SETUSER', USER, 'reset', 'on', '>token-a', '~*', '&*', '+@all');
    const tokens = settableTokens('token-a');
    const config = iamConfig();
    const prefix = `${config.prefix}:bull`;
    const queueConnection = createRedis(config, 'worker', 'iam-test-queue', tokens);
    const queue = new Queue('iam-test', { connection: queueConnection, prefix });
    const done: string[] = [];
    const workerConnection = createRedis(config, 'worker', 'iam-test-worker', tokens);
    const worker = new Worker('iam-test', async (job) => `done ${job.id}`, { connection: workerConnection, prefix });
    worker.on('completed', (job) => done.push(job.id!));
    worker.on('error', () => undefined);
    queue.on('error', () => undefined);
    try {
      await queue.add('t', {}, { jobId: 'before' });
      await until('the first job', async () => (done.includes('before') ? true : undefined));
      // The worker's main connection, its blocking duplicate, and the queue's connection.
      expect((await clientsOfUser()).length).toBeGreaterThanOrEqual(3);

      await rotate(tokens, 'token-b');
      await within(10_000, 'queueing a job after the rotation', queue.add('t', {}, { jobId: 'after' }));
      await until('the job queued after the rotation', async () => (done.includes('after') ? true : undefined), 15_000);
      expect((await clientsOfUser()).length).toBeGreaterThanOrEqual(3);
      // BullMQ retries a connection that fails to AUTH, so the job alone would hide stale tokens.
      expect(await authFailures()).toBe(0);
    } finally {
      // Bounded: BullMQ waits for a connection that cannot authenticate (when this test fails).
      const closed = Promise.all([worker.close(true), queue.close()]).catch(() => undefined);
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
      workerConnection.disconnect();
      queueConnection.disconnect();
    }
  });

  it('the control: a client with a fixed password (password auth, unchanged) connects, but cannot come back after the rotation', async () => {
    await admin.call('ACL', 'SETUSER', USER, 'reset', 'on', '>fixed-1', '~*', '&*', '+@all');
    const config: RedisConfig = { ...iamConfig(), url: `rediss://${USER}:fixed-1@127.0.0.1:${server.port}`, auth: { mode: 'password' } };
    const client = createRedis(config, 'worker', 'password-test');
    opened.push(client);
    expect(await client.call('ACL', 'WHOAMI')).toBe(USER);
    const errors: string[] = [];
    client.on('error', (err: Error) => errors.push(err.message));
    await rotate(undefined, 'fixed-2');
    await until('an authentication failure', async () => (errors.some((m) => /WRONGPASS/.test(m)) ? true : undefined));
    expect(client.status).not.toBe('ready');
    expect(await authFailures()).toBeGreaterThanOrEqual(1);
  });

  it('refuses to build an IAM client without a token source', () => {
    expect(() => createRedis(iamConfig(), 'request', 'no-tokens')).toThrow('IAM authentication needs a token source');
  });
});
