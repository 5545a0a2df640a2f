// PostgreSQL access: one pool per process, TLS per sslmode, password from the URL or from
// Secrets Manager (re-read on authentication failure).
import fs from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import type { DatabaseConfig, SslMode } from './config';
import { type CredentialCache, type CredentialSource, createCredentialCache, secretsManagerSource } from './db-credentials';
import type { Logger } from './logger';

export interface Db {
  readonly pool: pg.Pool;
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, params?: unknown[]): Promise<pg.QueryResult<R>>;
  /** Runs `fn` in a transaction on one connection. */
  tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
  /** Set when credentials come from Secrets Manager. */
  readonly credentials?: CredentialCache;
}

/** libpq's sslmode in node's TLS terms. verify-full is node's default: CA and host name checked. */
export function sslOptions(mode: SslMode, caFile?: string): false | ConnectionOptions {
  const ca = caFile ? fs.readFileSync(caFile, 'utf8') : undefined;
  switch (mode) {
    case 'disable':
      return false;
    case 'require':
      return { rejectUnauthorized: false };
    case 'verify-ca':
      return { ca, rejectUnauthorized: true, checkServerIdentity: () => undefined };
    case 'verify-full':
      return { ca, rejectUnauthorized: true };
  }
}

/** invalid_password, invalid_authorization_specification */
const AUTH_FAILED = new Set(['28P01', '28000']);
export const isAuthFailure = (err: unknown): boolean => AUTH_FAILED.has((err as { code?: string }).code ?? '');

export async function createDb(
  config: DatabaseConfig,
  log: Logger,
  options: { credentialSource?: CredentialSource; applicationName?: string; max?: number } = {},
): Promise<Db> {
  const u = new URL(config.url);
  const source =
    options.credentialSource ??
    (config.secretArn ? secretsManagerSource({ secretId: config.secretArn, region: config.region, endpoint: config.secretsEndpoint }) : undefined);
  const credentials = source ? createCredentialCache(source) : undefined;
  // The username is fixed for the pool's life (rotation changes passwords, not users).
  const user = credentials ? ((await credentials.get()).username ?? decodeURIComponent(u.username)) : decodeURIComponent(u.username);
  const pool = new pg.Pool({
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 5432,
    database: decodeURIComponent(u.pathname.replace(/^\//, '')) || undefined,
    user: user || undefined,
    password: credentials ? async () => (await credentials.get()).password : decodeURIComponent(u.password) || undefined,
    ssl: sslOptions(config.sslMode, config.caFile),
    max: options.max ?? config.poolSize,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    application_name: options.applicationName ?? 'cadfleet',
  });
  // An idle connection that dies (database restart, failover) must not crash the process.
  pool.on('error', (err) => log.warn({ err }, 'idle PostgreSQL connection failed'));

  async function withAuthRetry<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (!credentials || !isAuthFailure(err)) throw err;
      log.warn('PostgreSQL refused the password; reading the database secret again');
      credentials.invalidate();
      return fn();
    }
  }

  return {
    pool,
    credentials,
    query: (text, params) => withAuthRetry(() => pool.query(text, params)),
    async tx(fn) {
      const client = await withAuthRetry(() => pool.connect());
      // A checked-out client has no pool listener: its connection dying in the middle of the
      // transaction (a database restart) emits 'error' on the client itself, which would end the
      // process. The failing query rejects as well; the client is then destroyed, not reused.
      let broken: Error | undefined;
      const onError = (err: Error): void => {
        broken = err;
        log.warn({ err }, 'PostgreSQL connection failed during a transaction');
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(client);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.off('error', onError);
        client.release(broken);
      }
    },
    async ping() {
      await withAuthRetry(() => pool.query('SELECT 1'));
    },
    close: () => pool.end(),
  };
}
