// The conversion queue (BullMQ on Redis). The job id is the model id, so enqueueing a model
// twice is a no-op and a job can always be traced to its model.
import { Queue } from 'bullmq';
import type { Config } from './config';
import type { Model } from './models';
import type { Redis } from './redis';

export const CONVERSION_QUEUE = 'conversions';

export interface ConversionJobData {
  modelId: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  inputKey: string;
}

export interface ConversionJobResult {
  outcome: 'ready' | 'skipped' | 'reused';
  workerNode: string;
  workerHost: string;
}

export const JOB_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed'] as const;
export type QueueCounts = Record<(typeof JOB_STATES)[number], number>;

export interface ConversionQueue {
  enqueue(model: Model): Promise<void>;
  counts(): Promise<QueueCounts>;
  /** Drops a job that is not running (a deleted model's); a running one finds its model gone. */
  discard(modelId: string): Promise<void>;
  /** True when Redis has a job for the model in any state. */
  has(modelId: string): Promise<boolean>;
  /** The job's state, or undefined when Redis has no such job. */
  state(modelId: string): Promise<string | undefined>;
  close(): Promise<void>;
}

export const bullPrefix = (config: Config['redis']): string => `${config.prefix}:bull`;

/** Retries with backoff as the settings say; finished jobs kept a while for the status page and debugging (PostgreSQL holds the lasting state). */
export const jobDefaults = (config: Pick<Config, 'worker'>) => ({
  attempts: config.worker.attempts,
  backoff: { type: 'exponential', delay: config.worker.backoffMs },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
});

export function createConversionQueue(connection: Redis, config: Pick<Config, 'redis' | 'worker'>): ConversionQueue {
  const queue = new Queue<ConversionJobData, ConversionJobResult>(CONVERSION_QUEUE, {
    connection,
    prefix: bullPrefix(config.redis),
    defaultJobOptions: jobDefaults(config),
  });
  queue.on('error', () => undefined);
  return {
    async enqueue(model) {
      const data: ConversionJobData = {
        modelId: model.id,
        project: model.project,
        name: model.name,
        format: model.format,
        quality: model.quality,
        inputKey: model.inputKey,
      };
      await queue.add('convert', data, { jobId: model.id });
    },
    async counts() {
      const counts = await queue.getJobCounts(...JOB_STATES);
      return Object.fromEntries(JOB_STATES.map((s) => [s, counts[s] ?? 0])) as QueueCounts;
    },
    async discard(modelId) {
      await queue.remove(modelId).catch(() => undefined);
    },
    async has(modelId) {
      return (await queue.getJob(modelId)) !== undefined;
    },
    async state(modelId) {
      const job = await queue.getJob(modelId);
      return job ? String(await queue.getJobState(modelId)) : undefined;
    },
    close: () => queue.close(),
  };
}
