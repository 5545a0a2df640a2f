// The service's runtime configuration: environment variables parsed once at start.
// Every variable is named in the schema below with its default; an invalid value stops the
// process with a message that names the variable.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { portOf } from './host-contract';

export const ROLES = ['api', 'worker', 'streamer'] as const;
export type Role = (typeof ROLES)[number];

export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });
const url = (protocols: string[]) =>
  z.string().refine(
    (v) => {
      try {
        return protocols.includes(new URL(v).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a ${protocols.map((p) => `${p}//`).join(' or ')} URL` },
  );
const readableFile = z.string().refine((p) => fs.existsSync(p), { error: 'must name a readable file' });
const nodeId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, { error: 'must be letters, digits, dot, dash or underscore' });
const streamSecret = z.string().min(32, { error: 'must be at least 32 characters' });
const bucket = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name' });

const awsRegion = z.string().min(1).default('us-east-1');

export const REDIS_AUTH_MODES = ['password', 'iam'] as const;

/**
 * Variables of every process that talks to Redis: the service roles and cadfleet-lb-sync
 * (which extends this schema and calls redisConfigFrom, so both read Redis the same way).
 */
export const redisEnvSchema = z.object({
  /**
   * redis://[[user]:password@]host:port or rediss://... (TLS). With CADFLEET_REDIS_AUTH=iam:
   * rediss://<ElastiCache user>@host:port, no password.
   */
  CADFLEET_REDIS_URL: url(['redis:', 'rediss:']),
  /** PEM CA bundle for rediss:// (ElastiCache in-transit encryption uses a public CA: leave unset there). */
  CADFLEET_REDIS_CA_FILE: readableFile.optional(),
  /** Prefix of every Redis key the service writes (queue and registry). */
  CADFLEET_REDIS_PREFIX: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, { error: 'must be letters, digits, colon, dash or underscore' }).default('cadfleet'),
  /**
   * password: AUTH with what the URL carries (or nothing). iam: ElastiCache IAM authentication,
   * a SigV4 token from the AWS credentials (the instance role), renewed before it expires.
   */
  CADFLEET_REDIS_AUTH: z.enum(REDIS_AUTH_MODES).default('password'),
  /** With CADFLEET_REDIS_AUTH=iam: the replication group id (or serverless cache name) the tokens are signed for. */
  CADFLEET_REDIS_IAM_CACHE_ID: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,49}$/, { error: 'must be an ElastiCache replication group id or cache name' }).optional(),
  /** With CADFLEET_REDIS_AUTH=iam: the cache is ElastiCache Serverless (tokens carry ResourceType=ServerlessCache). */
  CADFLEET_REDIS_IAM_SERVERLESS: bool.default(false),
  /** The region tokens are signed for. */
  AWS_REGION: awsRegion,
});

/** Variables every command needs: the database. */
const databaseSchema = z.object({
  /** postgres://user[:password]@host:port/db; sslmode and sslrootcert query parameters are honoured. */
  CADFLEET_DATABASE_URL: url(['postgres:', 'postgresql:']),
  /** disable | require | verify-ca | verify-full. Overrides the URL's sslmode. @default verify-full */
  CADFLEET_DATABASE_SSLMODE: z.enum(SSL_MODES).optional(),
  /** PEM bundle of the CA that signed the server certificate (the RDS CA bundle). Overrides sslrootcert. */
  CADFLEET_DATABASE_CA_FILE: readableFile.optional(),
  /** Secrets Manager secret (ARN or name) holding {"username","password"}; re-read when authentication fails. */
  CADFLEET_DATABASE_SECRET_ARN: z.string().min(1).optional(),
  /** Endpoint override for Secrets Manager (a VPC endpoint). */
  CADFLEET_SECRETS_ENDPOINT: url(['http:', 'https:']).optional(),
  CADFLEET_DATABASE_POOL_SIZE: int(1, 200).default(10),
  /** Where the versioned SQL migrations live. @default app/migrations of this package */
  CADFLEET_MIGRATIONS_DIR: z.string().optional(),
  AWS_REGION: awsRegion,
  CADFLEET_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

/** Variables of the long-running roles. */
const serviceSchema = databaseSchema.extend(redisEnvSchema.shape).extend({
  CADFLEET_ROLE: z.enum(ROLES).optional(),
  /** This node's id in the registry. One process per role per host is the fleet's shape. @default <hostname>-<role> */
  CADFLEET_NODE_ID: nodeId.optional(),
  /** How other hosts reach this node (the LB reads it), e.g. http://10.0.1.5 and the api's port. */
  CADFLEET_ADVERTISE_URL: url(['http:', 'https:']).optional(),


  /** S3 endpoint for an S3-compatible server (s3rver locally); unset on AWS. */
  CADFLEET_S3_ENDPOINT: url(['http:', 'https:']).optional(),
  /** Endpoint written into presigned URLs when clients reach S3 by another address than the service. */
  CADFLEET_S3_PUBLIC_ENDPOINT: url(['http:', 'https:']).optional(),
  /** Path-style addressing (bucket in the path), needed by s3rver. */
  CADFLEET_S3_FORCE_PATH_STYLE: bool.default(false),
  CADFLEET_S3_UPLOADS_BUCKET: bucket,
  CADFLEET_S3_MODELS_BUCKET: bucket,

  CADFLEET_HTTP_HOST: z.string().default('0.0.0.0'),
  CADFLEET_HTTP_PORT: int(0, 65535).default(portOf('api')),
  /** Worker only: serve /healthz and /metrics on this port (off when unset). */
  CADFLEET_METRICS_PORT: int(0, 65535).optional(),
  /** Largest file accepted by POST /api/v1/models (multipart). */
  CADFLEET_MAX_UPLOAD_MB: int(1, 1_000_000).default(100),
  /** Largest file accepted through a presigned upload. */
  CADFLEET_MAX_PRESIGNED_UPLOAD_MB: int(1, 5_000_000).default(5120),
  CADFLEET_PRESIGN_EXPIRES_SECONDS: int(60, 604_800).default(900),
  /** Extensions accepted for upload. @default every format cadfleet-convert reads */
  CADFLEET_ACCEPTED_EXTENSIONS: z.string().regex(/^[a-z0-9]+(,[a-z0-9]+)*$/, { error: 'must be comma-separated lowercase extensions' }).optional(),

  /** Entries a .zip upload may hold (files and folders). */
  CADFLEET_ARCHIVE_MAX_ENTRIES: int(1, 1_000_000).default(10_000),
  /** What a .zip upload may expand to on a worker's disk, all files together. */
  CADFLEET_ARCHIVE_MAX_EXPANDED_MB: int(1, 1_000_000).default(4096),

  /** Webhooks: tries per delivery, the first retry's delay (doubling), the time an endpoint has to answer. */
  CADFLEET_WEBHOOK_ATTEMPTS: int(1, 100).default(12),
  CADFLEET_WEBHOOK_BACKOFF_MS: int(10).default(10_000),
  CADFLEET_WEBHOOK_TIMEOUT_MS: int(100, 120_000).default(10_000),
  CADFLEET_WEBHOOK_CONCURRENCY: int(1, 256).default(8),
  /** How often a worker turns new model events into webhook deliveries. */
  CADFLEET_WEBHOOK_DISPATCH_MS: int(10, 60_000).default(500),
  /** Comma-separated CIDRs webhooks may call although they are private (a receiver in the VPC). */
  CADFLEET_WEBHOOK_ALLOW_NETWORKS: z
    .string()
    .regex(/^[0-9a-fA-F:.]+(\/\d{1,3})?(,[0-9a-fA-F:.]+(\/\d{1,3})?)*$/, { error: 'must be comma-separated CIDRs such as 10.0.0.0/16' })
    .optional(),
  /** Plain http:// webhook URLs (https only by default). */
  CADFLEET_WEBHOOK_ALLOW_HTTP: bool.default(false),
  /** Model events (the event stream's replay, webhook deliveries' log) are kept this long. */
  CADFLEET_EVENTS_RETENTION_HOURS: int(1).default(168),
  /** How often the api's event stream looks for new events. */
  CADFLEET_EVENTS_POLL_MS: int(10, 60_000).default(500),

  /** Time one derived file (an export: STL, OBJ, GLB, STEP, IGES) may take; memory as CADFLEET_CONVERT_MAX_MEMORY_MB. */
  CADFLEET_EXPORT_TIMEOUT_MS: int(100).default(300_000),
  /** Presigned download links of exports stay valid this long. */
  CADFLEET_DOWNLOAD_URL_EXPIRES_SECONDS: int(60, 604_800).default(900),

  CADFLEET_WORKER_CONCURRENCY: int(1, 64).default(1),
  /** pool: warm converter processes; process: one converter process per job. */
  CADFLEET_CONVERTER_MODE: z.enum(['pool', 'process']).default('pool'),
  /** An operator's converter, e.g. `/opt/vendor/conv --in {input} --out {outputDir} --quality {quality}`. */
  CADFLEET_CONVERTER_COMMAND: z.string().min(1).optional(),
  CADFLEET_CONVERTER_RECYCLE_AFTER_JOBS: int(1).default(50),
  /** SSM SecureString parameter with a commercial converter's licence (workers hand it to converter processes as CADFLEET_CONVERTER_LICENSE). */
  CADFLEET_CONVERTER_LICENSE_PARAMETER: z.string().regex(/^\/[A-Za-z0-9_./-]+$/, { error: 'must be an SSM parameter name starting with "/"' }).optional(),
  /** SSM endpoint (a VPC endpoint, say). @default the region's */
  CADFLEET_SSM_ENDPOINT: url(['http:', 'https:']).optional(),
  CADFLEET_CONVERT_TIMEOUT_SECONDS: int(1).default(300),
  CADFLEET_CONVERT_MAX_MEMORY_MB: int(64).default(2048),
  CADFLEET_WORK_DIR: z.string().default(path.join(os.tmpdir(), 'cadfleet-work')),
  /** Tries per job (the first run included). Read by the api, which sets it on each job it queues. */
  CADFLEET_JOB_ATTEMPTS: int(1, 100).default(3),
  /** First retry delay; doubles on each retry. Read by the api, like CADFLEET_JOB_ATTEMPTS. */
  CADFLEET_JOB_BACKOFF_MS: int(0).default(5000),
  /** A job whose worker stops renewing its lock for this long counts as stalled. */
  CADFLEET_JOB_LOCK_MS: int(500).default(30_000),
  /** How often workers look for stalled jobs to take over. */
  CADFLEET_STALLED_INTERVAL_MS: int(200).default(30_000),
  /** A job that stalls more often than this (it kills its worker) fails for good. */
  CADFLEET_MAX_STALLED_COUNT: int(0, 100).default(2),
  /** A queued model whose job is missing from Redis is enqueued again after this long. 0 disables. */
  CADFLEET_REQUEUE_AFTER_MS: int(0).default(60_000),

  CADFLEET_HEARTBEAT_INTERVAL_MS: int(100).default(5000),
  /** A node whose heartbeat is older than this is gone. @default 3 heartbeats */
  CADFLEET_NODE_TTL_MS: int(300).optional(),
  /** How often the api checks PostgreSQL, Redis and S3 (answers 503 while one is down). */
  CADFLEET_DEPENDENCY_CHECK_MS: int(100).default(2000),
  /**
   * How long one check may take before it counts as slow (two slow checks in a row close the
   * gate). @default CADFLEET_DEPENDENCY_CHECK_MS, within 1 to 5 seconds
   */
  CADFLEET_DEPENDENCY_TIMEOUT_MS: int(100, 60_000).optional(),
  /** S3, once it answered, is checked again after this long (while it fails: every CADFLEET_DEPENDENCY_CHECK_MS). */
  CADFLEET_S3_CHECK_MS: int(100).default(15_000),
  /** Seconds a client is told to wait (Retry-After) while a dependency is down. */
  CADFLEET_RETRY_AFTER_SECONDS: int(1).default(5),
  /** Grace for in-flight requests and the running job on SIGTERM. */
  /** The whole graceful stop; an api's covers the LB's deregistration (15 s) and the linger (12 s). */
  CADFLEET_SHUTDOWN_TIMEOUT_MS: int(0).default(45_000),
  /** api on SIGTERM: how long to keep serving while waiting for the LB to drop this node (its sync publishes what it routes). */
  CADFLEET_LB_DEREGISTER_TIMEOUT_MS: int(0).default(15_000),
  /**
   * api on SIGTERM, once the LB's published routing has left it out: how long to go on serving.
   * nginx workers of the generation before the reload may still route with the old list, on a
   * client connection kept alive, for up to nginx_lb_keepalive_time (10 s); longer than that.
   */
  CADFLEET_LB_LINGER_MS: int(0).default(12_000),

  /** HMAC key of stream tokens, shared by the api and every streamer (at least 32 characters). Unset on the api: sessions answer 503. */
  CADFLEET_STREAM_TOKEN_SECRET: streamSecret.optional(),
  /** How long a stream URL's token may be used to open (or reopen) its WebSocket. */
  CADFLEET_STREAM_TOKEN_TTL_MS: int(1000).default(60_000),
  /** A session can be resumed this long after its last activity (Redis TTL of its record). */
  CADFLEET_STREAM_SESSION_TTL_MS: int(1000).default(3_600_000),
  /**
   * path: streamUrl is `/stream/<node>/<session>?token=...`, a path on the LB (fleet).
   * direct: the streamer's advertised address as ws(s)://, for one machine without an LB.
   */
  CADFLEET_STREAM_URL_MODE: z.enum(['path', 'direct']).default('path'),
  /** Serve the viewer (the built `dist/viewer`) at `/` from the api: single-machine mode. The LB serves it in a fleet. */
  CADFLEET_VIEWER_DIR: z.string().refine((p) => fs.existsSync(path.join(p, 'index.html')), { error: 'must be a directory holding index.html (npm run build)' }).optional(),
});

/** Variables of the streamer role: Redis (registry, sessions) and S3 (models); no PostgreSQL. */
const streamerSchema = serviceSchema
  .pick({
    CADFLEET_ROLE: true,
    CADFLEET_NODE_ID: true,
    CADFLEET_ADVERTISE_URL: true,
    CADFLEET_REDIS_URL: true,
    CADFLEET_REDIS_CA_FILE: true,
    CADFLEET_REDIS_PREFIX: true,
    CADFLEET_REDIS_AUTH: true,
    CADFLEET_REDIS_IAM_CACHE_ID: true,
    CADFLEET_REDIS_IAM_SERVERLESS: true,
    CADFLEET_S3_ENDPOINT: true,
    CADFLEET_S3_FORCE_PATH_STYLE: true,
    CADFLEET_S3_MODELS_BUCKET: true,
    CADFLEET_HTTP_HOST: true,
    CADFLEET_HEARTBEAT_INTERVAL_MS: true,
    CADFLEET_NODE_TTL_MS: true,
    CADFLEET_DEPENDENCY_CHECK_MS: true,
    CADFLEET_DEPENDENCY_TIMEOUT_MS: true,
    CADFLEET_S3_CHECK_MS: true,
    CADFLEET_STREAM_SESSION_TTL_MS: true,
    CADFLEET_LB_DEREGISTER_TIMEOUT_MS: true,
    AWS_REGION: true,
    CADFLEET_LOG_LEVEL: true,
  })
  .extend({
    CADFLEET_STREAM_TOKEN_SECRET: streamSecret,
    /** The key before the last rotation: tokens it signed are still accepted while the api hosts move to the new one. */
    CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS: streamSecret.optional(),
    /** WebSocket port (also /healthz, /readyz, /metrics). */
    CADFLEET_STREAM_PORT: int(0, 65535).default(portOf('streamer')),
    /** Sessions one streamer streams at once; more are refused (close 4429) and the api picks another node. */
    CADFLEET_STREAM_MAX_SESSIONS: int(1, 100_000).default(200),
    /** On SIGTERM: how long active sessions may go on before they are told to resume elsewhere. */
    CADFLEET_DRAIN_TIMEOUT_MS: int(0).default(30_000),
    /** A session whose client neither acknowledges frames nor drains its socket for this long is closed (resumable). */
    CADFLEET_STREAM_IDLE_TIMEOUT_MS: int(100).default(60_000),
    /** Time a client has after connecting to send its hello. */
    CADFLEET_STREAM_HELLO_TIMEOUT_MS: int(100).default(10_000),
    /** A WebSocket ping on every open connection this often (0: none), so the LB can cut viewers of a vanished streamer after a short silence. */
    CADFLEET_STREAM_PING_MS: int(0).default(5000),
    /** Disk cache of prepared models (per-part frames) in front of S3. */
    CADFLEET_STREAM_CACHE_DIR: z.string().default(path.join(os.tmpdir(), 'cadfleet-stream-cache')),
    /** Size cap of the disk cache; least recently used models go first. */
    CADFLEET_STREAM_CACHE_MB: int(1).default(2048),
    /** Prepared models kept in memory beyond those in use. */
    CADFLEET_STREAM_MEMORY_CACHE_MB: int(0).default(256),
    /** Largest number of triangles in one geometry frame: bigger parts are split. */
    CADFLEET_STREAM_CHUNK_TRIANGLES: int(16, 10_000_000).default(8192),
    /** Unacknowledged bytes per session (a client may ask for less in its hello). */
    CADFLEET_STREAM_WINDOW_KB: int(16).default(1024),
    /** Bytes a session may have queued in its socket before it waits (TCP back-pressure). */
    CADFLEET_STREAM_SEND_BUFFER_KB: int(16).default(512),
  });

/** The settings a streamer reads: the deploy withholds others from it (ansible/playbooks/group_vars/all/role.yml). */
export const STREAMER_SETTINGS: readonly string[] = Object.keys(streamerSchema.shape);

export interface DatabaseConfig {
  url: string;
  sslMode: SslMode;
  caFile?: string;
  secretArn?: string;
  secretsEndpoint?: string;
  poolSize: number;
  migrationsDir?: string;
  region: string;
}

export type RedisAuth =
  | { mode: 'password' }
  | {
      mode: 'iam';
      /** Replication group id or serverless cache name. */
      cacheId: string;
      /** The ElastiCache user (user id = user name for IAM users), from the URL. */
      user: string;
      region: string;
      serverless: boolean;
    };

export interface RedisConfig {
  url: string;
  caFile?: string;
  prefix: string;
  auth: RedisAuth;
}

export interface Config {
  role?: Role;
  nodeId?: string;
  advertiseUrl?: string;
  logLevel: string;
  database: DatabaseConfig;
  redis: RedisConfig;
  s3: { endpoint?: string; publicEndpoint?: string; forcePathStyle: boolean; region: string; uploadsBucket: string; modelsBucket: string };
  http: { host: string; port: number; metricsPort?: number };
  uploads: { maxBytes: number; maxPresignedBytes: number; presignExpiresSeconds: number; acceptedExtensions?: string[] };
  archives: { maxEntries: number; maxExpandedBytes: number };
  webhooks: {
    attempts: number;
    backoffMs: number;
    timeoutMs: number;
    concurrency: number;
    dispatchIntervalMs: number;
    retentionHours: number;
    policy: { allowNetworks: string[]; allowHttp: boolean };
  };
  events: { pollMs: number };
  exports: { timeoutMs: number; urlExpiresSeconds: number };
  worker: {
    concurrency: number;
    converterMode: 'pool' | 'process';
    converterCommand?: string;
    recycleAfterJobs: number;
    /** SSM parameter holding a converter licence. @default none */
    licenseParameter?: string;
    ssmEndpoint?: string;
    timeoutMs: number;
    maxMemoryMb: number;
    workDir: string;
    attempts: number;
    backoffMs: number;
    lockMs: number;
    stalledIntervalMs: number;
    maxStalledCount: number;
    requeueAfterMs: number;
  };
  heartbeatMs: number;
  nodeTtlMs: number;
  dependencyCheckMs: number;
  dependencyTimeoutMs: number;
  s3CheckMs: number;
  retryAfterSeconds: number;
  shutdownTimeoutMs: number;
  lbDeregisterTimeoutMs: number;
  lbLingerMs: number;
  stream: { tokenSecret?: string; tokenTtlMs: number; sessionTtlMs: number; urlMode: 'path' | 'direct' };
  viewerDir?: string;
}

/** The streamer role's configuration (no database). */
export interface StreamerConfig {
  role: 'streamer';
  nodeId?: string;
  advertiseUrl?: string;
  logLevel: string;
  redis: Config['redis'];
  s3: Config['s3'];
  http: { host: string; port: number };
  heartbeatMs: number;
  nodeTtlMs: number;
  dependencyCheckMs: number;
  dependencyTimeoutMs: number;
  s3CheckMs: number;
  lbDeregisterTimeoutMs: number;
  stream: {
    tokenSecret: string;
    /** Also accepted when checking tokens (the key before a rotation). */
    previousTokenSecret?: string;
    sessionTtlMs: number;
    maxSessions: number;
    drainTimeoutMs: number;
    idleTimeoutMs: number;
    helloTimeoutMs: number;
    pingIntervalMs: number;
    cacheDir: string;
    cacheMaxBytes: number;
    memoryCacheMaxBytes: number;
    chunkTriangles: number;
    windowBytes: number;
    sendBufferBytes: number;
  };
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

/** Parses `env` with `schema`; every problem is named in one ConfigError, secrets redacted. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Env): z.infer<S> {
  // Empty variables count as unset: `FOO= cmd` is how shells unset for one command.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = schema.safeParse(present);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const name = String(issue.path[0] ?? '(environment)');
    const value = present[name];
    const shown = value === undefined ? 'it is not set' : /PASSWORD|SECRET|DATABASE_URL|REDIS_URL/.test(name) ? 'got [REDACTED]' : `got ${JSON.stringify(value)}`;
    const message = issue.code === 'invalid_type' && value === undefined ? 'is required' : issue.message;
    return `${name} ${message}, ${shown}`;
  });
  throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
}

/** The Redis settings, with the checks that span variables (IAM needs a user, a cache id and TLS). */
export function redisConfigFrom(e: z.infer<typeof redisEnvSchema>): RedisConfig {
  const base = { url: e.CADFLEET_REDIS_URL, caFile: e.CADFLEET_REDIS_CA_FILE, prefix: e.CADFLEET_REDIS_PREFIX };
  if (e.CADFLEET_REDIS_AUTH === 'password') {
    if (e.CADFLEET_REDIS_IAM_CACHE_ID !== undefined) {
      throw new ConfigError(
        'invalid configuration:\n  CADFLEET_REDIS_IAM_CACHE_ID is set, but CADFLEET_REDIS_AUTH is "password": set CADFLEET_REDIS_AUTH=iam to use IAM authentication, or unset the cache id',
      );
    }
    return { ...base, auth: { mode: 'password' } };
  }
  const u = new URL(e.CADFLEET_REDIS_URL);
  const problems: string[] = [];
  if (u.protocol !== 'rediss:') problems.push('CADFLEET_REDIS_URL must be a rediss:// URL with CADFLEET_REDIS_AUTH=iam: ElastiCache takes IAM tokens over TLS only');
  if (u.username === '') problems.push('CADFLEET_REDIS_URL must name the ElastiCache user with CADFLEET_REDIS_AUTH=iam (rediss://<user>@<host>:6379)');
  if (u.password !== '') problems.push('CADFLEET_REDIS_URL must carry no password with CADFLEET_REDIS_AUTH=iam (the password is the IAM token), got [REDACTED]');
  if (e.CADFLEET_REDIS_IAM_CACHE_ID === undefined) problems.push('CADFLEET_REDIS_IAM_CACHE_ID is required with CADFLEET_REDIS_AUTH=iam (the replication group id, or the serverless cache name)');
  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return {
    ...base,
    auth: { mode: 'iam', cacheId: e.CADFLEET_REDIS_IAM_CACHE_ID!, user: decodeURIComponent(u.username), region: e.AWS_REGION, serverless: e.CADFLEET_REDIS_IAM_SERVERLESS },
  };
}

function databaseFrom(e: z.infer<typeof databaseSchema>): DatabaseConfig {
  const u = new URL(e.CADFLEET_DATABASE_URL);
  const urlMode = u.searchParams.get('sslmode');
  if (urlMode !== null && !(SSL_MODES as readonly string[]).includes(urlMode)) {
    throw new ConfigError(`invalid configuration:\n  CADFLEET_DATABASE_URL sslmode must be one of ${SSL_MODES.join(', ')}, got ${JSON.stringify(urlMode)}`);
  }
  const caFile = e.CADFLEET_DATABASE_CA_FILE ?? u.searchParams.get('sslrootcert') ?? undefined;
  if (caFile !== undefined && !fs.existsSync(caFile)) {
    throw new ConfigError(`invalid configuration:\n  CADFLEET_DATABASE_URL sslrootcert must name a readable file, got ${JSON.stringify(caFile)}`);
  }
  // TLS settings are applied by db.ts from these fields, not by the driver's URL parsing,
  // whose sslmode semantics differ from libpq's.
  for (const p of ['sslmode', 'sslrootcert', 'sslcert', 'sslkey', 'ssl', 'uselibpqcompat']) u.searchParams.delete(p);
  return {
    url: u.toString(),
    sslMode: e.CADFLEET_DATABASE_SSLMODE ?? (urlMode as SslMode | null) ?? 'verify-full',
    caFile,
    secretArn: e.CADFLEET_DATABASE_SECRET_ARN,
    secretsEndpoint: e.CADFLEET_SECRETS_ENDPOINT,
    poolSize: e.CADFLEET_DATABASE_POOL_SIZE,
    migrationsDir: e.CADFLEET_MIGRATIONS_DIR,
    region: e.AWS_REGION,
  };
}

/** The database settings alone, for the migrate and keys commands. */
export function loadDatabaseConfig(env: Env = process.env): { database: DatabaseConfig; logLevel: string } {
  const e = parseEnv(databaseSchema, env);
  return { database: databaseFrom(e), logLevel: e.CADFLEET_LOG_LEVEL };
}

/** A dependency check's deadline: as set, else the check interval within 1 to 5 s. */
const dependencyTimeoutMs = (e: { CADFLEET_DEPENDENCY_TIMEOUT_MS?: number; CADFLEET_DEPENDENCY_CHECK_MS: number }): number =>
  e.CADFLEET_DEPENDENCY_TIMEOUT_MS ?? Math.max(1000, Math.min(5000, e.CADFLEET_DEPENDENCY_CHECK_MS));

/** The whole configuration of the api and worker roles (the streamer has loadStreamerConfig). */
export function loadConfig(env: Env = process.env): Config {
  const e = parseEnv(serviceSchema, env);
  return {
    role: e.CADFLEET_ROLE,
    nodeId: e.CADFLEET_NODE_ID,
    advertiseUrl: e.CADFLEET_ADVERTISE_URL,
    logLevel: e.CADFLEET_LOG_LEVEL,
    database: databaseFrom(e),
    redis: redisConfigFrom(e),
    s3: {
      endpoint: e.CADFLEET_S3_ENDPOINT,
      publicEndpoint: e.CADFLEET_S3_PUBLIC_ENDPOINT,
      forcePathStyle: e.CADFLEET_S3_FORCE_PATH_STYLE,
      region: e.AWS_REGION,
      uploadsBucket: e.CADFLEET_S3_UPLOADS_BUCKET,
      modelsBucket: e.CADFLEET_S3_MODELS_BUCKET,
    },
    http: { host: e.CADFLEET_HTTP_HOST, port: e.CADFLEET_HTTP_PORT, metricsPort: e.CADFLEET_METRICS_PORT },
    uploads: {
      maxBytes: e.CADFLEET_MAX_UPLOAD_MB * 1024 * 1024,
      maxPresignedBytes: e.CADFLEET_MAX_PRESIGNED_UPLOAD_MB * 1024 * 1024,
      presignExpiresSeconds: e.CADFLEET_PRESIGN_EXPIRES_SECONDS,
      acceptedExtensions: e.CADFLEET_ACCEPTED_EXTENSIONS?.split(','),
    },
    archives: { maxEntries: e.CADFLEET_ARCHIVE_MAX_ENTRIES, maxExpandedBytes: e.CADFLEET_ARCHIVE_MAX_EXPANDED_MB * 1024 * 1024 },
    webhooks: {
      attempts: e.CADFLEET_WEBHOOK_ATTEMPTS,
      backoffMs: e.CADFLEET_WEBHOOK_BACKOFF_MS,
      timeoutMs: e.CADFLEET_WEBHOOK_TIMEOUT_MS,
      concurrency: e.CADFLEET_WEBHOOK_CONCURRENCY,
      dispatchIntervalMs: e.CADFLEET_WEBHOOK_DISPATCH_MS,
      retentionHours: e.CADFLEET_EVENTS_RETENTION_HOURS,
      policy: { allowNetworks: e.CADFLEET_WEBHOOK_ALLOW_NETWORKS?.split(',') ?? [], allowHttp: e.CADFLEET_WEBHOOK_ALLOW_HTTP },
    },
    events: { pollMs: e.CADFLEET_EVENTS_POLL_MS },
    exports: { timeoutMs: e.CADFLEET_EXPORT_TIMEOUT_MS, urlExpiresSeconds: e.CADFLEET_DOWNLOAD_URL_EXPIRES_SECONDS },
    worker: {
      concurrency: e.CADFLEET_WORKER_CONCURRENCY,
      converterMode: e.CADFLEET_CONVERTER_MODE,
      converterCommand: e.CADFLEET_CONVERTER_COMMAND,
      recycleAfterJobs: e.CADFLEET_CONVERTER_RECYCLE_AFTER_JOBS,
      licenseParameter: e.CADFLEET_CONVERTER_LICENSE_PARAMETER,
      ssmEndpoint: e.CADFLEET_SSM_ENDPOINT,
      timeoutMs: e.CADFLEET_CONVERT_TIMEOUT_SECONDS * 1000,
      maxMemoryMb: e.CADFLEET_CONVERT_MAX_MEMORY_MB,
      workDir: e.CADFLEET_WORK_DIR,
      attempts: e.CADFLEET_JOB_ATTEMPTS,
      backoffMs: e.CADFLEET_JOB_BACKOFF_MS,
      lockMs: e.CADFLEET_JOB_LOCK_MS,
      stalledIntervalMs: e.CADFLEET_STALLED_INTERVAL_MS,
      maxStalledCount: e.CADFLEET_MAX_STALLED_COUNT,
      requeueAfterMs: e.CADFLEET_REQUEUE_AFTER_MS,
    },
    heartbeatMs: e.CADFLEET_HEARTBEAT_INTERVAL_MS,
    nodeTtlMs: e.CADFLEET_NODE_TTL_MS ?? e.CADFLEET_HEARTBEAT_INTERVAL_MS * 3,
    dependencyCheckMs: e.CADFLEET_DEPENDENCY_CHECK_MS,
    dependencyTimeoutMs: dependencyTimeoutMs(e),
    s3CheckMs: e.CADFLEET_S3_CHECK_MS,
    retryAfterSeconds: e.CADFLEET_RETRY_AFTER_SECONDS,
    shutdownTimeoutMs: e.CADFLEET_SHUTDOWN_TIMEOUT_MS,
    lbDeregisterTimeoutMs: e.CADFLEET_LB_DEREGISTER_TIMEOUT_MS,
    lbLingerMs: e.CADFLEET_LB_LINGER_MS,
    stream: {
      tokenSecret: e.CADFLEET_STREAM_TOKEN_SECRET,
      tokenTtlMs: e.CADFLEET_STREAM_TOKEN_TTL_MS,
      sessionTtlMs: e.CADFLEET_STREAM_SESSION_TTL_MS,
      urlMode: e.CADFLEET_STREAM_URL_MODE,
    },
    viewerDir: e.CADFLEET_VIEWER_DIR,
  };
}

/** The streamer's configuration: Redis, the models bucket and the stream settings. */
export function loadStreamerConfig(env: Env = process.env): StreamerConfig {
  const e = parseEnv(streamerSchema, env);
  return {
    role: 'streamer',
    nodeId: e.CADFLEET_NODE_ID,
    advertiseUrl: e.CADFLEET_ADVERTISE_URL,
    logLevel: e.CADFLEET_LOG_LEVEL,
    redis: redisConfigFrom(e),
    // The streamer only reads models: the uploads bucket is never touched.
    s3: {
      endpoint: e.CADFLEET_S3_ENDPOINT,
      forcePathStyle: e.CADFLEET_S3_FORCE_PATH_STYLE,
      region: e.AWS_REGION,
      uploadsBucket: e.CADFLEET_S3_MODELS_BUCKET,
      modelsBucket: e.CADFLEET_S3_MODELS_BUCKET,
    },
    http: { host: e.CADFLEET_HTTP_HOST, port: e.CADFLEET_STREAM_PORT },
    heartbeatMs: e.CADFLEET_HEARTBEAT_INTERVAL_MS,
    nodeTtlMs: e.CADFLEET_NODE_TTL_MS ?? e.CADFLEET_HEARTBEAT_INTERVAL_MS * 3,
    dependencyCheckMs: e.CADFLEET_DEPENDENCY_CHECK_MS,
    dependencyTimeoutMs: dependencyTimeoutMs(e),
    s3CheckMs: e.CADFLEET_S3_CHECK_MS,
    lbDeregisterTimeoutMs: e.CADFLEET_LB_DEREGISTER_TIMEOUT_MS,
    stream: {
      tokenSecret: e.CADFLEET_STREAM_TOKEN_SECRET,
      previousTokenSecret: e.CADFLEET_STREAM_TOKEN_SECRET_PREVIOUS,
      sessionTtlMs: e.CADFLEET_STREAM_SESSION_TTL_MS,
      maxSessions: e.CADFLEET_STREAM_MAX_SESSIONS,
      drainTimeoutMs: e.CADFLEET_DRAIN_TIMEOUT_MS,
      idleTimeoutMs: e.CADFLEET_STREAM_IDLE_TIMEOUT_MS,
      helloTimeoutMs: e.CADFLEET_STREAM_HELLO_TIMEOUT_MS,
      pingIntervalMs: e.CADFLEET_STREAM_PING_MS,
      cacheDir: e.CADFLEET_STREAM_CACHE_DIR,
      cacheMaxBytes: e.CADFLEET_STREAM_CACHE_MB * 1024 * 1024,
      memoryCacheMaxBytes: e.CADFLEET_STREAM_MEMORY_CACHE_MB * 1024 * 1024,
      chunkTriangles: e.CADFLEET_STREAM_CHUNK_TRIANGLES,
      windowBytes: e.CADFLEET_STREAM_WINDOW_KB * 1024,
      sendBufferBytes: e.CADFLEET_STREAM_SEND_BUFFER_KB * 1024,
    },
  };
}

/** This node's registry id. */
export function nodeIdFor(config: Pick<Config, 'nodeId'>, role: string): string {
  return config.nodeId ?? `${os.hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${role}`;
}
