// Bearer API keys on every api route. /status also takes HTTP Basic (the key as password) so
// that a browser can open the page: it prompts once and remembers the answer for the tab.
import type { FastifyRequest } from 'fastify';
import { HttpError } from '../shared/http-errors';
import type { KeyService, Principal } from '../shared/keys';
import type { Scope } from '../shared/models';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

export function keyFromHeader(header: string | undefined, allowBasic: boolean): string | undefined {
  if (!header) return undefined;
  const [scheme, value = ''] = header.trim().split(/\s+/, 2);
  if (scheme?.toLowerCase() === 'bearer') return value;
  if (allowBasic && scheme?.toLowerCase() === 'basic') {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = colon < 0 ? decoded : decoded.slice(0, colon);
    const password = colon < 0 ? '' : decoded.slice(colon + 1);
    return password || user;
  }
  return '';
}

export function authenticator(keys: KeyService) {
  return async function authenticate(request: FastifyRequest, options: { basic?: boolean } = {}): Promise<Principal> {
    const challenge = options.basic ? 'Basic realm="cadfleet status", charset="UTF-8"' : 'Bearer realm="cadfleet"';
    const key = keyFromHeader(request.headers.authorization, options.basic ?? false);
    if (key === undefined) {
      throw new HttpError(401, 'missing_key', 'an API key is required: send the header "Authorization: Bearer <key>"', { 'www-authenticate': challenge });
    }
    const result = await keys.verify(key);
    if (!result.ok) {
      const [code, message] =
        result.reason === 'revoked' ? ['revoked_key', 'this API key was revoked; ask an administrator for a new one'] : ['invalid_key', 'the API key is not valid'];
      throw new HttpError(401, code, message, { 'www-authenticate': challenge });
    }
    request.principal = result.principal;
    return result.principal;
  };
}

/** What the caller may see: its project, or everything for an admin key. */
export const scopeOf = (principal: Principal): Scope => (principal.admin ? {} : { project: principal.project });

export function requireAdmin(principal: Principal): void {
  if (!principal.admin) throw new HttpError(403, 'admin_required', 'this needs an admin API key');
}

export type Authenticate = ReturnType<typeof authenticator>;
