// Stream tokens: what the api hands out with a stream URL and the streamer checks before it
// streams. Short-lived and bound to one session, its model and project, and the node the api
// picked. Format: `v1.<base64url JSON claims>.<base64url HMAC-SHA256 of "v1.<claims>">`, keyed
// with CADFLEET_STREAM_TOKEN_SECRET (the api and every streamer share it).
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface StreamClaims {
  /** session id */
  sid: string;
  /** model id */
  mid: string;
  /** project */
  prj: string;
  /** node id the session is assigned to */
  nod: string;
  /** expiry, ms since epoch */
  exp: number;
}

const PREFIX = 'v1';

const mac = (secret: string, data: string): Buffer => createHmac('sha256', secret).update(data).digest();

export function signStreamToken(secret: string, claims: StreamClaims): string {
  const body = `${PREFIX}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

export type TokenCheck =
  | { ok: true; claims: StreamClaims }
  | { ok: false; code: 'token_missing' | 'token_invalid' | 'token_expired' | 'token_mismatch'; message: string };

/**
 * Verifies the signature first (with any of the keys: the current one, and the one before a
 * rotation), then expiry, then that the token names this session and node.
 */
export function verifyStreamToken(
  secret: string | readonly string[],
  token: string | null | undefined,
  expected: { sessionId: string; node: string },
  now = Date.now(),
): TokenCheck {
  if (!token) return { ok: false, code: 'token_missing', message: 'the stream URL has no token; ask the api for a session' };
  const parts = token.split('.');
  if (parts.length !== 3 || parts[0] !== PREFIX) return { ok: false, code: 'token_invalid', message: 'the token is malformed' };
  const given = Buffer.from(parts[2]!, 'base64url');
  const signedWith = (key: string): boolean => {
    const wanted = mac(key, `${parts[0]}.${parts[1]}`);
    return given.length === wanted.length && timingSafeEqual(given, wanted);
  };
  if (!(typeof secret === 'string' ? [secret] : secret).some(signedWith)) return { ok: false, code: 'token_invalid', message: 'the token signature is not valid' };
  let claims: StreamClaims;
  try {
    claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as StreamClaims;
  } catch {
    return { ok: false, code: 'token_invalid', message: 'the token is malformed' };
  }
  if (typeof claims.exp !== 'number' || claims.exp <= now) {
    return { ok: false, code: 'token_expired', message: 'the token has expired; ask the api to resume the session' };
  }
  if (claims.sid !== expected.sessionId) return { ok: false, code: 'token_mismatch', message: 'the token belongs to another session' };
  if (claims.nod !== expected.node) return { ok: false, code: 'token_mismatch', message: 'the token names another streaming node; ask the api to resume the session' };
  return { ok: true, claims };
}
