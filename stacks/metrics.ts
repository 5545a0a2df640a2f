// The CloudWatch metrics the app publishes and the stacks scale on. One module so that the
// publisher (app), the scaling policies and the alarms cannot drift apart: import these
// names, never spell them again.

/** CloudWatch namespace of every custom cadfleet metric. */
export const METRICS_NAMESPACE = 'Cadfleet';

/** The one dimension every cadfleet metric carries; its value is the environment name. */
export const METRICS_DIMENSION = 'Environment';

export const METRICS = {
  /** Conversion jobs waiting in the queue (BullMQ waiting + delayed). Workers scale on it. */
  queueDepth: 'QueueDepth',
  /** Age of the oldest waiting job, in seconds. For alarms: a stuck queue. */
  oldestJobAgeSeconds: 'OldestJobAgeSeconds',
  /** Open streaming sessions across the fleet. Streamers scale on it. */
  activeSessions: 'ActiveSessions',
  /** HTTP responses with a 5xx status. For alarms. */
  http5xx: 'Http5xx',
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];
