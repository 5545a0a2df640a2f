// Dependency checks for /readyz and for the api's 503 gate: PostgreSQL, Redis, S3.

export interface DependencyStatus {
  name: string;
  ok: boolean;
  latencyMs: number;
  error?: string;
  checkedAt: number;
}

export interface Health {
  /** Checks every dependency now. */
  check(): Promise<DependencyStatus[]>;
  /** The last results (all ok before the first check). */
  current(): DependencyStatus[];
  /** Dependencies that failed their last check. */
  down(): DependencyStatus[];
  /** Checks in the background every `intervalMs`. */
  start(intervalMs: number): void;
  stop(): void;
  /** Called when a dependency goes down or comes back. */
  onChange?: (status: DependencyStatus) => void;
}

const withTimeout = <T>(p: Promise<T>, ms: number, what: string): Promise<T> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
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

export function createHealth(checks: Record<string, () => Promise<unknown>>, options: { timeoutMs?: number } = {}): Health {
  const timeoutMs = options.timeoutMs ?? 2000;
  let last: DependencyStatus[] = Object.keys(checks).map((name) => ({ name, ok: true, latencyMs: 0, checkedAt: 0 }));
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
            return { name, ok: true, latencyMs: Math.round(performance.now() - started), checkedAt: Date.now() };
          } catch (err) {
            const message = (err as Error).message || (err as Error).name || String(err);
            return { name, ok: false, latencyMs: Math.round(performance.now() - started), error: message, checkedAt: Date.now() };
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
    down: () => last.filter((s) => !s.ok),
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
