// ElastiCache IAM authentication: the AUTH password is a SigV4-presigned request, valid 15
// minutes, that ElastiCache checks once, when a connection authenticates. A connection it
// accepted lives on (ElastiCache closes it after 12 hours); every new connection, reconnects
// included, needs a token that is still valid. See the ElastiCache guide, "Authenticating
// with IAM".
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

/** ElastiCache refuses a token whose X-Amz-Expires is above 900 seconds. */
export const TOKEN_LIFETIME_SECONDS = 900;

export interface ElastiCacheTokenRequest {
  /** The replication group id (or, with `serverless`, the serverless cache name). */
  cacheId: string;
  /** The ElastiCache user id; for IAM users it must equal the user name that AUTH sends. */
  userId: string;
  region: string;
  /** A serverless cache: the token carries ResourceType=ServerlessCache. @default false */
  serverless?: boolean;
}

/** RFC 3986 encoding, as SigV4 wants it in the canonical query (encodeURIComponent leaves !'()* alone). */
const encode = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * The token: `<cacheId>/?<query>` for a presigned `GET http://<cacheId>/?Action=connect&User=<userId>`,
 * the parameters in canonical (sorted) order and X-Amz-Signature last. ElastiCache recomputes
 * the signature from the sorted query, so the order is ours to choose; fixing it makes the
 * token comparable in tests.
 */
export async function signElastiCacheToken(request: ElastiCacheTokenRequest, credentials: AwsCredentialIdentity, signingDate: Date): Promise<string> {
  const signer = new SignatureV4({ service: 'elasticache', region: request.region, credentials, sha256: Sha256 });
  const query: Record<string, string> = { Action: 'connect', User: request.userId };
  if (request.serverless) query.ResourceType = 'ServerlessCache';
  const signed = await signer.presign(
    { method: 'GET', protocol: 'http:', hostname: request.cacheId, path: '/', headers: { host: request.cacheId }, query },
    { expiresIn: TOKEN_LIFETIME_SECONDS, signingDate },
  );
  const { 'X-Amz-Signature': signature, ...rest } = signed.query as Record<string, string>;
  if (signature === undefined) throw new Error('the SigV4 signer returned no X-Amz-Signature');
  const pairs = Object.keys(rest)
    .sort()
    .map((k) => `${encode(k)}=${encode(rest[k]!)}`);
  return `${request.cacheId}/?${pairs.join('&')}&X-Amz-Signature=${signature}`;
}

export interface IssuedToken {
  token: string;
  /** Epoch ms after which ElastiCache refuses it: 15 minutes, or sooner when the credentials expire sooner. */
  expiresAt: number;
}

/**
 * Makes tokens with credentials from `credentials` (on EC2: the instance role through the
 * SDK's default chain, which renews them before they expire).
 */
export function elastiCacheTokenIssuer(
  request: ElastiCacheTokenRequest,
  credentials: AwsCredentialIdentityProvider,
  now: () => number = Date.now,
): () => Promise<IssuedToken> {
  return async () => {
    const identity = await credentials();
    const at = now();
    const token = await signElastiCacheToken(request, identity, new Date(at));
    // A presigned request is only as good as the credentials that signed it.
    const expiresAt = Math.min(at + TOKEN_LIFETIME_SECONDS * 1000, identity.expiration?.getTime() ?? Infinity);
    return { token, expiresAt };
  };
}

/** What a Redis client reads each time it (re)connects: the password to AUTH with. */
export interface TokenSource {
  current(): string;
}

export interface TokenCache extends TokenSource {
  /** Issues a new token if the current one is due for renewal; failures keep the old one (and are reported). */
  refreshIfDue(): Promise<void>;
  stop(): void;
}

export interface TokenCacheOptions {
  issue: () => Promise<IssuedToken>;
  now?: () => number;
  /**
   * Renew this long before the token expires. A reconnect reads the token synchronously, so
   * the token must stay valid through the check interval and a slow issue.
   * @default 180000 (3 minutes: a 15-minute token is replaced after 12)
   */
  renewBeforeMs?: number;
  /** How often to check. @default 30000 */
  checkEveryMs?: number;
  onError?: (err: unknown) => void;
}

/**
 * Holds a valid token at all times so that ioredis, which reads its password synchronously
 * when it connects, always finds one. The first token is issued before this resolves: a
 * process whose credentials cannot sign anything fails at start, not at its first reconnect.
 */
export async function startTokenCache(options: TokenCacheOptions): Promise<TokenCache> {
  const now = options.now ?? Date.now;
  const renewBeforeMs = options.renewBeforeMs ?? 180_000;
  let issued = await options.issue();
  let inFlight: Promise<void> | undefined;

  const refreshIfDue = (): Promise<void> => {
    if (now() < issued.expiresAt - renewBeforeMs) return Promise.resolve();
    inFlight ??= options
      .issue()
      .then((next) => {
        issued = next;
      })
      .catch((err: unknown) => options.onError?.(err))
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const timer = setInterval(() => void refreshIfDue(), options.checkEveryMs ?? 30_000);
  timer.unref();
  return {
    current: () => issued.token,
    refreshIfDue,
    stop: () => clearInterval(timer),
  };
}
