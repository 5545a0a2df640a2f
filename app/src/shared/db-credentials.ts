// Database credentials from AWS Secrets Manager. RDS rotates a managed master password on
// its own schedule, so the secret is read again whenever PostgreSQL refuses our login.
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';

export interface DatabaseCredentials {
  username?: string;
  password: string;
}

/** Where credentials come from: Secrets Manager in production; anything with `read` in tests. */
export interface CredentialSource {
  read(): Promise<DatabaseCredentials>;
}

const secretSchema = z.object({ username: z.string().optional(), password: z.string().min(1) });

export function secretsManagerSource(options: { secretId: string; region: string; endpoint?: string }): CredentialSource {
  const client = new SecretsManagerClient({ region: options.region, endpoint: options.endpoint });
  return {
    async read() {
      const out = await client.send(new GetSecretValueCommand({ SecretId: options.secretId }));
      if (!out.SecretString) throw new Error(`the secret ${options.secretId} has no SecretString`);
      let parsed: unknown;
      try {
        parsed = JSON.parse(out.SecretString);
      } catch {
        throw new Error(`the secret ${options.secretId} is not JSON with "username" and "password"`);
      }
      const result = secretSchema.safeParse(parsed);
      if (!result.success) throw new Error(`the secret ${options.secretId} must be JSON with a "password" string (and optionally "username")`);
      return result.data;
    },
  };
}

export interface CredentialCache {
  get(): Promise<DatabaseCredentials>;
  /** Marks the cached password stale after an authentication failure. */
  invalidate(): void;
  /** How many times the source was read (for logs and tests). */
  readonly reads: number;
}

/**
 * Caches the secret; after `invalidate` the next `get` reads it again. Forced re-reads are at
 * most one per `minRefreshMs`, so that a wrong password does not turn into a Secrets Manager
 * request storm.
 */
export function createCredentialCache(source: CredentialSource, options: { minRefreshMs?: number } = {}): CredentialCache {
  const minRefreshMs = options.minRefreshMs ?? 1000;
  let current: Promise<DatabaseCredentials> | undefined;
  let forcedAt = -Infinity;
  let stale = false;
  let reads = 0;
  const load = (): Promise<DatabaseCredentials> => {
    reads++;
    stale = false;
    const p = source.read();
    // A failed read is not cached: the next get tries again.
    p.catch(() => {
      if (current === p) current = undefined;
    });
    return p;
  };
  return {
    get() {
      if (!current) current = load();
      else if (stale && Date.now() - forcedAt >= minRefreshMs) {
        forcedAt = Date.now();
        current = load();
      }
      return current;
    },
    invalidate() {
      stale = true;
    },
    get reads() {
      return reads;
    },
  };
}
