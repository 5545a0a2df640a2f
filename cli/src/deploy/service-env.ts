import { HOST_CONTRACT } from '../../../app/src/shared/host-contract';
import type { Outputs } from '../contract';
import type { LocalSecrets } from './local-secrets';

/** Where the common role installs the fleet CA on every host (local fleet). */
export const FLEET_CA_FILE = '/usr/local/share/ca-certificates/cadfleet-ca.crt';
const RELEASE = HOST_CONTRACT.install.current;
/** s3rver's one fixed key pair: on the local fleet, the network bounds access to S3. */
export const S3RVER_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/**
 * The service environment every app host shares (app/src/shared/config.ts names each variable). The
 * per-host part (node id, advertise URL, version) is added by the playbook. Local fleet: the
 * data host's PostgreSQL, Redis and S3 server, all over TLS checked against the fleet CA.
 */
export function localServiceEnv(outputs: Outputs, secrets: LocalSecrets): Record<string, string> {
  const { postgres, redis, buckets } = outputs;
  if (!buckets.endpoint) throw new Error('the local outputs name no S3 endpoint');
  return {
    CADFLEET_DATABASE_URL: `postgres://cadfleet:${encodeURIComponent(secrets.postgresPassword)}@${postgres.host}:${postgres.port}/${postgres.database}`,
    CADFLEET_DATABASE_SSLMODE: 'verify-full',
    CADFLEET_DATABASE_CA_FILE: FLEET_CA_FILE,
    CADFLEET_REDIS_URL: `rediss://:${encodeURIComponent(secrets.redisPassword)}@${redis.host}:${redis.port}`,
    CADFLEET_REDIS_CA_FILE: FLEET_CA_FILE,
    CADFLEET_S3_ENDPOINT: buckets.endpoint,
    CADFLEET_S3_FORCE_PATH_STYLE: 'true',
    CADFLEET_S3_UPLOADS_BUCKET: 'cadfleet-uploads',
    CADFLEET_S3_MODELS_BUCKET: buckets.models,
    AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    // The AWS SDK speaks HTTPS to the S3 server: trust the fleet CA for it too.
    NODE_EXTRA_CA_CERTS: FLEET_CA_FILE,
    CADFLEET_CONVERT_BIN: `${RELEASE}/bin/cadfleet-convert.js`,
    CADFLEET_MIGRATIONS_DIR: `${RELEASE}/app/migrations`,
    CADFLEET_WORK_DIR: `${HOST_CONTRACT.install.state_dir}/work`,
    CADFLEET_STREAM_TOKEN_SECRET: secrets.streamTokenSecret,
    ...extraServiceEnv(process.env.CADFLEET_SERVICE_ENV),
  };
}

/**
 * Operator overrides of the service's settings for an environment, as a JSON object of
 * CADFLEET_* variables (tests shorten stall detection and drain timeouts this way).
 */
export function extraServiceEnv(json: string | undefined): Record<string, string> {
  if (!json) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error('CADFLEET_SERVICE_ENV must be a JSON object of CADFLEET_* variables, e.g. {"CADFLEET_JOB_LOCK_MS":"5000"}');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('CADFLEET_SERVICE_ENV must be a JSON object');
  return Object.fromEntries(
    Object.entries(parsed as Record<string, unknown>).map(([name, value]) => {
      if (!/^CADFLEET_[A-Z0-9_]+$/.test(name)) throw new Error(`CADFLEET_SERVICE_ENV may only set CADFLEET_* variables, got ${name}`);
      return [name, String(value)];
    }),
  );
}
