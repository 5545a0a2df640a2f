import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { type IssuedToken, TOKEN_LIFETIME_SECONDS, elastiCacheTokenIssuer, signElastiCacheToken, startTokenCache } from '../../app/src/shared/redis-iam';

// AWS's documentation example credentials: made up, and recognisably so.
const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const SESSION_TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE/+session=token';
const REQUEST = { cacheId: 'cadfleet-staging', userId: 'cadfleet-staging-app', region: 'eu-west-1' };
const AT = new Date('2026-05-01T12:34:56.789Z');

/**
 * The ElastiCache token computed here by the SigV4 query-signing steps as AWS documents them
 * ("Create a signed AWS API request", "Authenticating requests: using query parameters"),
 * with node:crypto only, so the module's use of the SDK signer is checked against the spec,
 * not against itself.
 */
function expectedToken(o: { cacheId: string; userId: string; region: string; serverless?: boolean; accessKeyId: string; secretAccessKey: string; sessionToken?: string }, at: Date): string {
  const rfc3986 = (s: string): string => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const longDate = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, ''); // 20260501T123456Z
  const shortDate = longDate.slice(0, 8);
  const scope = `${shortDate}/${o.region}/elasticache/aws4_request`;
  const params: Record<string, string> = {
    Action: 'connect',
    User: o.userId,
    ...(o.serverless ? { ResourceType: 'ServerlessCache' } : {}),
    'X-Amz-Algorithm': 'AWS4-HMAC-SHA256',
    'X-Amz-Credential': `${o.accessKeyId}/${scope}`,
    'X-Amz-Date': longDate,
    'X-Amz-Expires': '900',
    ...(o.sessionToken ? { 'X-Amz-Security-Token': o.sessionToken } : {}),
    'X-Amz-SignedHeaders': 'host',
  };
  const canonicalQuery = Object.keys(params)
    .sort()
    .map((k) => `${rfc3986(k)}=${rfc3986(params[k]!)}`)
    .join('&');
  const emptyPayloadHash = crypto.createHash('sha256').update('').digest('hex');
  const canonicalRequest = ['GET', '/', canonicalQuery, `host:${o.cacheId}\n`, 'host', emptyPayloadHash].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', longDate, scope, crypto.createHash('sha256').update(canonicalRequest).digest('hex')].join('\n');
  const hmac = (key: crypto.BinaryLike, data: string): Buffer => crypto.createHmac('sha256', key).update(data).digest();
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${o.secretAccessKey}`, shortDate), o.region), 'elasticache'), 'aws4_request');
  const signature = crypto.createHmac('sha256', signingKey).update(stringToSign).digest('hex');
  return `${o.cacheId}/?${canonicalQuery}&X-Amz-Signature=${signature}`;
}

const queryOf = (token: string): URLSearchParams => new URLSearchParams(token.slice(token.indexOf('?') + 1));

describe('ElastiCache IAM token', () => {
  it('is the SigV4-presigned connect request for the cache and user, without a scheme', async () => {
    const token = await signElastiCacheToken(REQUEST, CREDENTIALS, AT);
    expect(token).toBe(expectedToken({ ...REQUEST, ...CREDENTIALS }, AT));
    expect(token).toMatch(/^cadfleet-staging\/\?Action=connect&User=cadfleet-staging-app&X-Amz-Algorithm=/);
    expect(token).not.toMatch(/^https?:/);
    const q = queryOf(token);
    expect(q.get('X-Amz-Algorithm')).toBe('AWS4-HMAC-SHA256');
    expect(q.get('X-Amz-Credential')).toBe('AKIDEXAMPLE/20260501/eu-west-1/elasticache/aws4_request');
    expect(q.get('X-Amz-Date')).toBe('20260501T123456Z');
    expect(q.get('X-Amz-Expires')).toBe(String(TOKEN_LIFETIME_SECONDS));
    expect(q.get('X-Amz-Expires')).toBe('900');
    expect(q.get('X-Amz-SignedHeaders')).toBe('host');
    expect(q.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(q.has('X-Amz-Security-Token')).toBe(false);
    expect(q.has('ResourceType')).toBe(false);
  });

  it('carries (and signs) the session token of temporary credentials, as an instance role has', async () => {
    const token = await signElastiCacheToken(REQUEST, { ...CREDENTIALS, sessionToken: SESSION_TOKEN }, AT);
    expect(token).toBe(expectedToken({ ...REQUEST, ...CREDENTIALS, sessionToken: SESSION_TOKEN }, AT));
    expect(queryOf(token).get('X-Amz-Security-Token')).toBe(SESSION_TOKEN);
    // Encoded in the token: '/', '+' and '=' would otherwise change meaning in a query string.
    expect(token).toContain('X-Amz-Security-Token=IQoJb3JpZ2luX2VjEXAMPLE%2F%2Bsession%3Dtoken&');
    // A different session token is a different signature: it is part of what is signed.
    const other = await signElastiCacheToken(REQUEST, { ...CREDENTIALS, sessionToken: `${SESSION_TOKEN}x` }, AT);
    expect(queryOf(other).get('X-Amz-Signature')).not.toBe(queryOf(token).get('X-Amz-Signature'));
  });

  it('names a serverless cache with ResourceType=ServerlessCache, only when asked', async () => {
    const serverless = { ...REQUEST, cacheId: 'cadfleet-serverless', serverless: true };
    const token = await signElastiCacheToken(serverless, CREDENTIALS, AT);
    expect(token).toBe(expectedToken({ ...serverless, ...CREDENTIALS }, AT));
    expect(queryOf(token).get('ResourceType')).toBe('ServerlessCache');
  });

  it('expires 15 minutes after signing, or when the credentials that signed it expire if that is sooner', async () => {
    const at = AT.getTime();
    const lasting = elastiCacheTokenIssuer(REQUEST, async () => ({ ...CREDENTIALS, expiration: new Date(at + 6 * 3600_000) }), () => at);
    const issued = await lasting();
    expect(issued.expiresAt).toBe(at + 900_000);
    expect(issued.token).toBe(expectedToken({ ...REQUEST, ...CREDENTIALS }, AT));
    const shortLived = elastiCacheTokenIssuer(REQUEST, async () => ({ ...CREDENTIALS, expiration: new Date(at + 240_000) }), () => at);
    expect((await shortLived()).expiresAt).toBe(at + 240_000);
    const noExpiry = elastiCacheTokenIssuer(REQUEST, async () => CREDENTIALS, () => at);
    expect((await noExpiry()).expiresAt).toBe(at + 900_000);
  });
});

describe('token cache', () => {
  /** An issuer that numbers its tokens, on a clock the test moves. */
  function fakeIssuer(clock: { now: number }, lifetimeMs = 900_000) {
    const calls: number[] = [];
    let failing: Error | undefined;
    const issue = async (): Promise<IssuedToken> => {
      calls.push(clock.now);
      if (failing) throw failing;
      return { token: `token-${calls.length}`, expiresAt: clock.now + lifetimeMs };
    };
    return { issue, calls, fail: (err: Error | undefined) => (failing = err) };
  }

  it('reuses a token within its window and renews it 3 minutes before it expires', async () => {
    const clock = { now: 1_000_000 };
    const issuer = fakeIssuer(clock);
    const cache = await startTokenCache({ issue: issuer.issue, now: () => clock.now });
    try {
      expect(cache.current()).toBe('token-1');
      clock.now += 12 * 60_000 - 1;
      await cache.refreshIfDue();
      expect(cache.current()).toBe('token-1');
      expect(issuer.calls).toHaveLength(1);
      clock.now += 1;
      await cache.refreshIfDue();
      expect(cache.current()).toBe('token-2');
      await cache.refreshIfDue();
      expect(issuer.calls).toHaveLength(2);
    } finally {
      cache.stop();
    }
  });

  it('renews sooner when the token expires sooner (credentials about to expire)', async () => {
    const clock = { now: 0 };
    const issuer = fakeIssuer(clock, 4 * 60_000);
    const cache = await startTokenCache({ issue: issuer.issue, now: () => clock.now });
    try {
      clock.now = 60_000;
      await cache.refreshIfDue();
      expect(cache.current()).toBe('token-2');
    } finally {
      cache.stop();
    }
  });

  it('keeps the old token when renewal fails, reports it, and tries again on the next check', async () => {
    const clock = { now: 0 };
    const issuer = fakeIssuer(clock);
    const errors: unknown[] = [];
    const cache = await startTokenCache({ issue: issuer.issue, now: () => clock.now, onError: (err) => errors.push(err) });
    try {
      clock.now = 13 * 60_000;
      issuer.fail(new Error('the instance metadata service did not answer'));
      await cache.refreshIfDue();
      expect(cache.current()).toBe('token-1');
      expect(errors).toEqual([new Error('the instance metadata service did not answer')]);
      issuer.fail(undefined);
      await cache.refreshIfDue();
      expect(cache.current()).toBe('token-3');
    } finally {
      cache.stop();
    }
  });

  it('issues once for concurrent checks', async () => {
    const clock = { now: 0 };
    const issuer = fakeIssuer(clock);
    const cache = await startTokenCache({ issue: issuer.issue, now: () => clock.now });
    try {
      clock.now = 14 * 60_000;
      await Promise.all([cache.refreshIfDue(), cache.refreshIfDue(), cache.refreshIfDue()]);
      expect(issuer.calls).toHaveLength(2);
    } finally {
      cache.stop();
    }
  });

  it('renews on its own timer, with nobody asking', async () => {
    const clock = { now: 0 };
    const issuer = fakeIssuer(clock);
    const cache = await startTokenCache({ issue: issuer.issue, now: () => clock.now, checkEveryMs: 10 });
    try {
      await new Promise((r) => setTimeout(r, 50));
      expect(cache.current()).toBe('token-1');
      clock.now = 12 * 60_000;
      // A poll with a deadline far past the 10 ms timer: the app tier runs beside the fleet tier, starved.
      const deadline = Date.now() + 10_000;
      while (cache.current() === 'token-1' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(cache.current()).toBe('token-2');
    } finally {
      cache.stop();
    }
  });

  it('fails to start when the first token cannot be made', async () => {
    await expect(startTokenCache({ issue: () => Promise.reject(new Error('no credentials')) })).rejects.toThrow('no credentials');
  });
});
