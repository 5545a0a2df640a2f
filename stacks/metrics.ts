// The CloudWatch metrics the stacks scale and alarm on, and the log groups the hosts ship
// to. The names live in one JSON file that the CloudWatch agent role renders its
// configuration from too, so the publisher (the agent, scraping the app's /metrics), the
// scaling policies and the alarms cannot drift apart: import these names, never spell them
// again. The file sits in the role because release bundles carry ansible/ and not stacks/.
import contract from '../ansible/roles/cloudwatch_agent/files/cloudwatch.json' with { type: 'json' };
import { must } from './validate';

/** CloudWatch namespace of every custom cadfleet metric. */
export const METRICS_NAMESPACE: string = contract.namespace;

/** The one dimension every cadfleet metric carries; its value is the environment name. */
export const METRICS_DIMENSION: string = contract.dimension;

export type MetricKey = keyof typeof contract.metrics;

/** A CloudWatch metric name from the contract (the values of METRICS). */
export type MetricName = string;

/**
 * The metric names by key:
 * - `queueDepth`: conversion jobs waiting for a worker (BullMQ `waiting`; delayed retries are
 *   not runnable yet), fleet-wide: every api host publishes the same value. Workers scale on
 *   it divided by the workers in service.
 * - `oldestJobAgeSeconds`: age of the oldest waiting job, fleet-wide. For alarms: a stuck queue.
 * - `activeSessions`: open streaming sessions on each streamer (one value per host).
 *   Streamers scale on its average.
 * - `http5xx`: HTTP responses with a 5xx status, counted per host and summed. For alarms.
 */
export const METRICS = Object.fromEntries(Object.entries(contract.metrics).map(([key, metric]) => [key, metric.name])) as Readonly<Record<MetricKey, MetricName>>;

/** How each metric is made from the app's Prometheus metrics (see the role's agent configuration). */
export const METRIC_SOURCES = contract.metrics;

/** CloudWatch Logs groups of an environment: `journal` (the units' journald logs), `metrics` (the agent's embedded-metric-format records). */
export type LogGroupKind = keyof typeof contract.logGroups;

export const logGroupName = (kind: LogGroupKind, environment: string): string => contract.logGroups[kind].replace('{environment}', environment);

const names = Object.values(METRICS);
names.forEach((name, i) => {
  must(/^[A-Za-z][A-Za-z0-9]{0,63}$/.test(name) && names.indexOf(name) === i, `metrics.${Object.keys(METRICS)[i]}.name`, 'be a unique alphanumeric CloudWatch metric name', name);
});
