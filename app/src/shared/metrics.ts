// Prometheus metrics. /metrics is for the private network: the LB must not route it (nginx
// sends only /api, /status and /stream upstream), so it carries no authentication.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  uploads: Counter<'kind'>;
  reused: Counter;
  conversions: Counter<'outcome'>;
  conversionSeconds: Histogram<'outcome'>;
  /** Registers a gauge computed at scrape time. */
  gauge(name: string, help: string, labelNames: string[], collect: (set: (labels: Record<string, string>, value: number) => void) => Promise<void>): void;
}

/** One registry per process role (never prom-client's global one, so tests can build several apps). */
export function createMetrics(labels: { role: string; node: string }): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  collectDefaultMetrics({ register: registry, prefix: 'cadfleet_' });
  return {
    registry,
    httpRequests: new Counter({ name: 'cadfleet_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    httpDuration: new Histogram({
      name: 'cadfleet_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    uploads: new Counter({ name: 'cadfleet_uploads_total', help: 'Accepted uploads', labelNames: ['kind'], registers: [registry] }),
    reused: new Counter({ name: 'cadfleet_models_reused_total', help: 'Uploads made ready from an earlier conversion of the same bytes, without a job', registers: [registry] }),
    conversions: new Counter({ name: 'cadfleet_conversions_total', help: 'Finished conversion attempts by outcome', labelNames: ['outcome'], registers: [registry] }),
    conversionSeconds: new Histogram({
      name: 'cadfleet_conversion_duration_seconds',
      help: 'Wall time of a conversion attempt in the worker (download, convert, upload)',
      labelNames: ['outcome'],
      buckets: [0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
      registers: [registry],
    }),
    gauge(name, help, labelNames, collect) {
      new Gauge({
        name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          this.reset();
          await collect((l, v) => this.set(l, v)).catch(() => undefined);
        },
      });
    },
  };
}
