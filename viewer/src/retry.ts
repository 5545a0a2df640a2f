// Coming back when the service says so: a 429 (the LB's rate limits) or a 503 (the api while a
// dependency is down) carries Retry-After, and the viewer waits that long before it asks again,
// a bounded number of times. No DOM here, so that tests run it in Node.

/** Refusals worth sending again after a wait. */
const RETRYABLE = new Set([429, 503]);
/** A 429 without Retry-After (a proxy in between that dropped it): the LB's own figure. */
const DEFAULT_WAIT_MS = 1000;

/**
 * How long a refusal asks the client to wait, in ms, or undefined when it is not one to send
 * again. Retry-After is whole seconds or an HTTP date (RFC 9110, 10.2.3); a 503 without it is
 * not retried here (the api always sends it with its 503s).
 */
export function retryAfterMs(status: number, header: string | null | undefined, now = Date.now()): number | undefined {
  if (!RETRYABLE.has(status)) return undefined;
  const value = header?.trim() ?? '';
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = value ? Date.parse(value) : NaN;
  if (!Number.isNaN(date)) return Math.max(0, date - now);
  return status === 429 ? DEFAULT_WAIT_MS : undefined;
}

export interface RetryOptions {
  /** Tries in all, the first one included. */
  attempts: number;
  /** A longer Retry-After is waited this long at most (the viewer keeps answering its user). */
  maxWaitMs: number;
  /** Before each wait: what to show the user. */
  onWait(waitMs: number, error: Error, attempt: number): void;
  sleep?(ms: number): Promise<void>;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `send` again while it fails with an error that carries `retryAfterMs` (ApiError does for 429
 * and 503), waiting as asked; any other error, and the last try's, goes to the caller.
 */
export async function withRetryAfter<T>(send: () => Promise<T>, options: RetryOptions): Promise<T> {
  const sleep = options.sleep ?? defaultSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      const wait = (err as { retryAfterMs?: unknown }).retryAfterMs;
      if (typeof wait !== 'number' || attempt >= options.attempts) throw err;
      const ms = Math.min(wait, options.maxWaitMs);
      options.onWait(ms, err as Error, attempt);
      await sleep(ms);
    }
  }
}
