import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadStreamerConfig } from '../../app/src/shared/config';

const ROOT = path.resolve(import.meta.dirname, '../..');

const BASE = {
  CADFLEET_DATABASE_URL: 'postgres://cadfleet@db.internal:5432/cadfleet',
  CADFLEET_S3_UPLOADS_BUCKET: 'cadfleet-uploads',
  CADFLEET_S3_MODELS_BUCKET: 'cadfleet-models',
  AWS_REGION: 'eu-west-1',
};
/** What the stacks put in the app's SSM parameter (stacks/cadfleet-stack.ts). */
const STACK_REDIS = {
  CADFLEET_REDIS_URL: 'rediss://cadfleet-staging-app@master.cadfleet-staging.abc123.euw1.cache.amazonaws.com:6379',
  CADFLEET_REDIS_AUTH: 'iam',
  CADFLEET_REDIS_IAM_CACHE_ID: 'cadfleet-staging',
};

function configError(env: Record<string, string>): string {
  try {
    loadConfig({ ...BASE, ...env });
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  throw new Error('no ConfigError');
}

describe('Redis settings', () => {
  it('default to password authentication, whatever the URL carries, unchanged', () => {
    const config = loadConfig({ ...BASE, CADFLEET_REDIS_URL: 'rediss://:s3cret@10.0.0.5:6379' });
    expect(config.redis).toEqual({ url: 'rediss://:s3cret@10.0.0.5:6379', caFile: undefined, prefix: 'cadfleet', auth: { mode: 'password' } });
  });

  it('read the stacks\' IAM settings: the user from the URL, the cache id, the region', () => {
    expect(loadConfig({ ...BASE, ...STACK_REDIS }).redis.auth).toEqual({
      mode: 'iam',
      cacheId: 'cadfleet-staging',
      user: 'cadfleet-staging-app',
      region: 'eu-west-1',
      serverless: false,
    });
    expect(loadConfig({ ...BASE, ...STACK_REDIS, CADFLEET_REDIS_IAM_SERVERLESS: 'true' }).redis.auth).toMatchObject({ mode: 'iam', serverless: true });
  });

  it('are the same for the streamer', () => {
    const config = loadStreamerConfig({ ...STACK_REDIS, AWS_REGION: 'eu-west-1', CADFLEET_S3_MODELS_BUCKET: 'cadfleet-models', CADFLEET_STREAM_TOKEN_SECRET: 'x'.repeat(32) });
    expect(config.redis.auth).toEqual({ mode: 'iam', cacheId: 'cadfleet-staging', user: 'cadfleet-staging-app', region: 'eu-west-1', serverless: false });
  });

  it('refuse IAM authentication without the cache id the tokens are signed for', () => {
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_IAM_CACHE_ID: '' })).toContain('CADFLEET_REDIS_IAM_CACHE_ID is required with CADFLEET_REDIS_AUTH=iam');
  });

  it('refuse IAM authentication over plain redis:// (ElastiCache takes tokens over TLS only)', () => {
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_URL: 'redis://cadfleet-staging-app@cache.internal:6379' })).toContain(
      'CADFLEET_REDIS_URL must be a rediss:// URL with CADFLEET_REDIS_AUTH=iam',
    );
  });

  it('refuse IAM authentication when the URL names no user', () => {
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_URL: 'rediss://cache.internal:6379' })).toContain('CADFLEET_REDIS_URL must name the ElastiCache user');
  });

  it('refuse a password in the URL with IAM authentication, without printing it', () => {
    const message = configError({ ...STACK_REDIS, CADFLEET_REDIS_URL: 'rediss://cadfleet-staging-app:hunter2@cache.internal:6379' });
    expect(message).toContain('CADFLEET_REDIS_URL must carry no password with CADFLEET_REDIS_AUTH=iam');
    expect(message).not.toContain('hunter2');
  });

  it('name every IAM problem at once', () => {
    const message = configError({ CADFLEET_REDIS_URL: 'redis://cache.internal:6379', CADFLEET_REDIS_AUTH: 'iam' });
    expect(message.split('\n').filter((l) => l.startsWith('  '))).toHaveLength(3);
  });

  it('refuse a cache id without CADFLEET_REDIS_AUTH=iam (a half-made IAM set-up)', () => {
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_AUTH: '' })).toContain('CADFLEET_REDIS_IAM_CACHE_ID is set, but CADFLEET_REDIS_AUTH is "password"');
  });

  it('refuse an unknown authentication mode and a cache id that is no ElastiCache id', () => {
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_AUTH: 'token' })).toMatch(/CADFLEET_REDIS_AUTH .*, got "token"/);
    expect(configError({ ...STACK_REDIS, CADFLEET_REDIS_IAM_CACHE_ID: 'arn:aws:elasticache:eu-west-1:1:replicationgroup:x' })).toContain(
      'CADFLEET_REDIS_IAM_CACHE_ID must be an ElastiCache replication group id or cache name',
    );
  });

  it('never echo a Redis URL, which can carry a password', () => {
    const message = configError({ CADFLEET_REDIS_URL: 'http://:hunter2@cache.internal:6379' });
    expect(message).toContain('CADFLEET_REDIS_URL must be a redis:// or rediss:// URL, got [REDACTED]');
    expect(message).not.toContain('hunter2');
  });
});

describe('cadfleet-lb-sync Redis settings', () => {
  const lbSync = (env: Record<string, string>) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', path.join(ROOT, 'app/src/lb-sync/main.ts')], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => ({ code: err.code, stderr: err.stderr }),
    );

  it('are checked as the service checks them (exit 2, the problem named)', async () => {
    const { code, stderr } = await lbSync({ CADFLEET_REDIS_URL: 'redis://cadfleet-staging-app@cache.internal:6379', CADFLEET_REDIS_AUTH: 'iam', CADFLEET_REDIS_IAM_CACHE_ID: 'cadfleet-staging' });
    expect(code).toBe(2);
    expect(stderr).toContain('cadfleet-lb-sync: invalid configuration:\n  CADFLEET_REDIS_URL must be a rediss:// URL with CADFLEET_REDIS_AUTH=iam');
  });
});

describe('the api and the LB agree on how long a drained api serves on', () => {
  it("lingers longer than the LB's keepalive_time, and its stop has room for the deregistration and the linger", async () => {
    const { parse } = await import('yaml');
    const fs = await import('node:fs');
    const defaults = parse(fs.readFileSync(path.join(ROOT, 'ansible/roles/nginx_lb/defaults/main.yml'), 'utf8')) as { nginx_lb_keepalive_time: string };
    const keepaliveMs = Number(/^(\d+)s$/.exec(defaults.nginx_lb_keepalive_time)?.[1]) * 1000;
    const config = loadConfig({ ...BASE, CADFLEET_REDIS_URL: 'redis://127.0.0.1:6379' });
    expect(keepaliveMs).toBeGreaterThan(0);
    expect(config.lbLingerMs).toBeGreaterThan(keepaliveMs);
    expect(config.shutdownTimeoutMs).toBeGreaterThan(config.lbDeregisterTimeoutMs + config.lbLingerMs);
  });
});
