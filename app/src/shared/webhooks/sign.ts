// Webhook signatures in the shape Stripe uses: the header
//   Cadfleet-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
// A receiver recomputes the HMAC over the raw body it got, compares in constant time, and
// refuses a timestamp older than its tolerance (a replayed delivery). Every attempt of one
// delivery carries the same Cadfleet-Event-Id: the receiver's idempotency key.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'cadfleet-signature';
export const EVENT_ID_HEADER = 'cadfleet-event-id';

/** A new endpoint secret: `whsec_` and 32 random bytes, URL-safe. */
export const newWebhookSecret = (): string => `whsec_${randomBytes(32).toString('base64url')}`;

export function signatureHeader(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): string {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return `t=${timestamp},v1=${mac}`;
}

/**
 * What a receiver does: true when `header` signs `body` with `secret` and its time is within
 * `toleranceSeconds` of now. Any v1 entry may match (a header may carry several during a rotation).
 */
export function verifySignature(secret: string, body: string, header: string | undefined, toleranceSeconds = 300, now = Date.now() / 1000): boolean {
  if (!header) return false;
  const parts = header.split(',').map((p) => p.split('=', 2) as [string, string]);
  const timestamp = Number(parts.find(([k]) => k === 't')?.[1]);
  if (!Number.isInteger(timestamp) || Math.abs(now - timestamp) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex'));
  return parts.some(([k, v]) => k === 'v1' && v.length === expected.length && timingSafeEqual(Buffer.from(v), expected));
}
