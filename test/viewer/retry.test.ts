// The viewer's Retry-After handling (viewer/src/retry.ts), without a browser.
import { describe, expect, it } from 'vitest';
import { retryAfterMs, withRetryAfter } from '../../viewer/src/retry';

class Refusal extends Error {
  constructor(readonly retryAfterMs?: number) {
    super('too many requests from this address; try again in 1 s');
  }
}

describe('Retry-After', () => {
  it('reads seconds and HTTP dates, on 429 and 503 only', () => {
    const now = Date.parse('2026-12-01T10:00:00Z');
    expect(retryAfterMs(429, '1', now)).toBe(1000);
    expect(retryAfterMs(503, ' 5 ', now)).toBe(5000);
    expect(retryAfterMs(503, 'Tue, 01 Dec 2026 10:00:07 GMT', now)).toBe(7000);
    expect(retryAfterMs(503, 'Tue, 01 Dec 2026 09:59:00 GMT', now)).toBe(0);
    // A 429 that lost its header on the way still waits a little; a bare 503 is not retried here.
    expect(retryAfterMs(429, null, now)).toBe(1000);
    expect(retryAfterMs(503, null, now)).toBeUndefined();
    expect(retryAfterMs(503, 'soon', now)).toBeUndefined();
    for (const status of [400, 413, 500, 502, 504]) expect(retryAfterMs(status, '3', now), String(status)).toBeUndefined();
  });

  it('waits as asked, says so, and sends again until it goes through', async () => {
    const waits: number[] = [];
    const shown: string[] = [];
    let calls = 0;
    const result = await withRetryAfter(
      async () => {
        if (++calls < 3) throw new Refusal(calls * 1000);
        return 'created';
      },
      { attempts: 5, maxWaitMs: 60_000, onWait: (ms, err, attempt) => shown.push(`${attempt}: ${ms} ${err.message}`), sleep: async (ms) => void waits.push(ms) },
    );
    expect(result).toBe('created');
    expect(calls).toBe(3);
    expect(waits).toEqual([1000, 2000]);
    expect(shown).toEqual(['1: 1000 too many requests from this address; try again in 1 s', '2: 2000 too many requests from this address; try again in 1 s']);
  });

  it('gives up after its attempts, caps a long wait, and passes other errors at once', async () => {
    const waits: number[] = [];
    let calls = 0;
    const options = { attempts: 3, maxWaitMs: 30_000, onWait: () => undefined, sleep: async (ms: number) => void waits.push(ms) };
    await expect(
      withRetryAfter(async () => {
        calls++;
        throw new Refusal(3_600_000);
      }, options),
    ).rejects.toBeInstanceOf(Refusal);
    expect(calls).toBe(3);
    expect(waits).toEqual([30_000, 30_000]);

    calls = 0;
    await expect(
      withRetryAfter(async () => {
        calls++;
        throw new Refusal(undefined);
      }, options),
    ).rejects.toBeInstanceOf(Refusal);
    expect(calls).toBe(1);
  });
});
