// Dependency checks for /readyz and for the api's 503 gate: PostgreSQL, Redis, S3.

export interface DependencyStatus {
  name: string;
  ok: boolean;
  latencyMs: number;
  error?: string;
  /** The check did not answer in time (as opposed to failing outright). */
  timedOut?: boolean;
  /** Failed checks in a row, this one included. */
  failures: number;
  checkedAt: number;
}

export interface Health {
  /** Checks every dependency now. */
  check(): Promise<DependencyStatus[]>;
  /** The last results (all ok before the first check). */
  current(): DependencyStatus[];
  /**
   * Dependencies the api treats as down (its 503 gate): a check that failed outright (refused,
   * unknown host, bad credentials), or `slowChecksToDown` checks in a row that did not answer in
   * time. One slow answer on a loaded host is not an outage; a request that meets a dependency
   * error gets its 503 anyway.
   */
  down(): DependencyStatus[];
  /** Checks in the background every `intervalMs`. */
  start(intervalMs: number): void;
  stop(): void;
  /** Called when a dependency goes down or comes back. */
  onChange?: (status: DependencyStatus) => void;
}

class CheckTimeout extends Error {}

/**
 * A deadline for a dependency's answer that counts only time this process was awake to read it.
 * When the deadline passes, what has arrived is read first: this process may itself have stalled
 * past it (a long GC pause, a starved CPU) with the answer waiting in its socket. The event loop
 * runs expired timers before it polls for I/O, and setImmediate after it, so an answer already
 * there settles the check and the timeout changes nothing. A deadline that fired later than its
 * own length past due (the process slept through more than a whole deadline) starts once more
 * from the moment it woke: on a starved host the dependency's answer, or the peer sending it,
 * was held up by the same starvation, and a 503 gate closed for that would refuse requests
 * because this host is busy, not because a dependency is down.
 */
const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise((resolve, reject) => {
    let due = performance.now() + ms;
    let restarted = false;
    const expire = (): void => {
      const overslept = performance.now() - due;
      if (!restarted && overslept > ms) {
        restarted = true;
        due = performance.now() + ms;
        timer = setTimeout(expire, ms);
        return;
      }
      setImmediate(() => reject(new CheckTimeout(`${what} did not answer within ${ms} ms`)));
    };
    let timer = setTimeout(expire, ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });

/**
 * A check that, once it passed, is not run again for `okForMs`; a failure is not remembered, so
 * a failing dependency is asked every round. For S3: it rarely fails, each HeadBucket is a
 * billed request from every node every round, and s3rver (the local fleet's stand-in) answers
 * it by listing the bucket, which grows with what is stored (it took half a core of the data
 * host in an idle fleet holding a few thousand objects).
 */
export function okForAWhile(fn: () => Promise<unknown>, okForMs: number, now: () => number = Date.now): () => Promise<void> {
  let okUntil = -Infinity;
  return async () => {
    if (now() < okUntil) return;
    await fn();
    okUntil = now() + okForMs;
  };
}

export function createHealth(checks: Record<string, () => Promise<unknown>>, options: { timeoutMs?: number; slowChecksToDown?: number } = {}): Health {
  const timeoutMs = options.timeoutMs ?? 2000;
  const slowChecksToDown = options.slowChecksToDown ?? 2;
  let last: DependencyStatus[] = Object.keys(checks).map((name) => ({ name, ok: true, latencyMs: 0, failures: 0, checkedAt: 0 }));
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<DependencyStatus[]> | undefined;

  const health: Health = {
    check() {
      // Concurrent callers share one round of checks.
      running ??= Promise.all(
        Object.entries(checks).map(async ([name, fn]): Promise<DependencyStatus> => {
          const started = performance.now();
          try {
            await withTimeout(fn(), timeoutMs, name);
            return { name, ok: true, latencyMs: Math.round(performance.now() - started), failures: 0, checkedAt: Date.now() };
          } catch (err) {
            const message = (err as Error).message || (err as Error).name || String(err);
            const failures = (last.find((s) => s.name === name)?.failures ?? 0) + 1;
            return { name, ok: false, latencyMs: Math.round(performance.now() - started), error: message, timedOut: err instanceof CheckTimeout, failures, checkedAt: Date.now() };
          }
        }),
      )
        .then((results) => {
          for (const r of results) {
            const before = last.find((s) => s.name === r.name);
            if (before && before.ok !== r.ok) health.onChange?.(r);
          }
          last = results;
          return results;
        })
        .finally(() => {
          running = undefined;
        });
      return running;
    },
    current: () => last,
    down: () => last.filter((s) => !s.ok && (!s.timedOut || s.failures >= slowChecksToDown)),
    start(intervalMs) {
      const loop = (): void => {
        void health.check().finally(() => {
          if (timer) timer = setTimeout(loop, intervalMs).unref();
        });
      };
      timer = setTimeout(loop, 0).unref();
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
  return health;
}
