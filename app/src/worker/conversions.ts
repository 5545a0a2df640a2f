// The worker: takes conversion jobs from BullMQ, runs the converter, stores the outputs and
// records the result. A job is acknowledged (the processor returns) only after its outputs are
// in S3 and PostgreSQL says ready; a worker that dies before that leaves the job's lock to
// expire, and another worker takes the job over.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Job, QueueEvents, UnrecoverableError, Worker } from 'bullmq';
import { ArchiveError, chooseRoot, extractZip } from '../shared/archive';
import { sha256Tap } from '../shared/content-hash';
import type { Config } from '../shared/config';
import type { Converter } from '../converter/types';
import type { Logger } from '../shared/logger';
import type { Metrics } from '../shared/metrics';
import type { ModelRepository, WorkerIdentity } from '../shared/models';
import { CONVERSION_QUEUE, type ConversionJobData, type ConversionJobResult, type ConversionQueue, bullPrefix } from '../shared/queue';
import type { Redis } from '../shared/redis';
import { CONTENT_TYPES, MODEL_FILES, type Storage, objectKeys } from '../shared/storage';
import { converterVersion } from '../shared/version';

/** Converter failures that another try cannot fix: the input is the problem. */
export const PERMANENT_CODES = new Set([
  'unsupported',
  'empty',
  'too-large',
  'corrupt',
  'unsafe-reference',
  'timeout',
  'memory',
  'archive-invalid',
  'archive-too-large',
  'archive-no-model',
  'archive-root-ambiguous',
  'archive-root-not-found',
]);

export interface WorkerDeps {
  config: Config;
  log: Logger;
  models: ModelRepository;
  storage: Storage;
  converter: Converter;
  metrics: Metrics;
  identity: WorkerIdentity;
  /** After a model became ready (converted or reused): its waiting exports can go. */
  afterReady?: (modelId: string) => Promise<void>;
  /** After a model failed for good: its waiting exports cannot be made. */
  afterFailed?: (modelId: string, error: string) => Promise<void>;
}

const isLastAttempt = (job: Job): boolean => job.attemptsMade + 1 >= (job.opts.attempts ?? 1);

/** The input's file name in the work dir: the uploaded name (the converter reads the format from it) when it is plain. */
export function inputFileName(name: string, format: string): string {
  const base = path.basename(name);
  // eslint-disable-next-line no-control-regex
  return base === name && base !== '.' && base !== '..' && !/[\u0000-\u001f\u007f\\]/.test(base) && base.toLowerCase().endsWith(`.${format}`) ? base : `input.${format}`;
}

export function createConversionProcessor(deps: WorkerDeps): (job: Job<ConversionJobData, ConversionJobResult>) => Promise<ConversionJobResult> {
  const { config, models, storage, converter, metrics, identity } = deps;
  const version = converterVersion(config.worker.converterCommand);
  const done = (outcome: ConversionJobResult['outcome']): ConversionJobResult => ({ outcome, workerNode: identity.node, workerHost: identity.host });

  return async (job) => {
    const { modelId } = job.data;
    const log = deps.log.child({ model: modelId, job: job.id, attempt: job.attemptsStarted });
    const started = await models.startConversion(modelId, job.id ?? modelId, job.attemptsStarted, identity);
    if (!started) {
      log.info('the model was deleted or is already finished; nothing to do');
      return done('skipped');
    }
    const { model, attemptId } = started;
    const t0 = performance.now();
    let outcome = 'error';
    const progress = async (value: number): Promise<void> => {
      // Progress is informative: a failure to publish it must not fail the conversion.
      await Promise.all([job.updateProgress(value), models.setProgress(modelId, value)]).catch((err: unknown) =>
        log.warn({ err }, 'could not publish progress'),
      );
    };
    await fsp.mkdir(config.worker.workDir, { recursive: true });
    const dir = await fsp.mkdtemp(path.join(config.worker.workDir, `${modelId}-`));
    try {
      log.info({ worker: identity.node }, 'conversion started');
      const input = await storage.get(storage.uploadsBucket, model.inputKey);
      if (!input) {
        const error = 'the uploaded file is missing from storage; upload it again';
        await models.finishFailed(modelId, attemptId, { error, code: 'input-missing' });
        outcome = 'failed';
        throw new UnrecoverableError(error);
      }
      // The download is hashed as it is written: presigned uploads get their content hash here.
      const tap = sha256Tap();
      const downloaded = model.archive ? path.join(dir, `upload.${model.archive}`) : path.join(dir, 'in', inputFileName(model.name, model.format));
      await fsp.mkdir(path.join(dir, 'in'));
      await pipeline(input.body, tap, fs.createWriteStream(downloaded));
      const sha256 = tap.hex();
      if (!model.contentSha256) await models.setContentHash(modelId, sha256).catch((err: unknown) => log.warn({ err }, 'could not record the content hash'));
      if (model.reuse && !model.reusedFrom) {
        const source = await models.findReusable({
          project: model.project,
          contentSha256: sha256,
          format: model.format,
          archiveRoot: model.archiveRoot,
          quality: model.quality,
          converterVersion: version,
        });
        if (source && source.id !== modelId && (await models.finishReused(modelId, attemptId, source.id))) {
          outcome = 'reused';
          log.info({ source: source.id }, 'same bytes already converted: reused its outputs, no conversion');
          return done('reused');
        }
      }

      let inputPath = downloaded;
      let baseDir: string | undefined;
      if (model.archive) {
        // Extracted with the api's checks made again: the worker trusts no earlier look.
        baseDir = path.join(dir, 'in');
        try {
          const listing = await extractZip(downloaded, baseDir, config.archives);
          inputPath = path.join(baseDir, ...chooseRoot(listing, model.archiveRoot ?? undefined).split('/'));
        } catch (err) {
          if (!(err instanceof ArchiveError)) throw err;
          await models.finishFailed(modelId, attemptId, { error: err.message, code: err.code });
          outcome = 'failed';
          log.info({ code: err.code, error: err.message }, 'archive refused');
          throw new UnrecoverableError(err.message);
        } finally {
          await fsp.rm(downloaded, { force: true });
        }
      }
      await progress(15);

      const outputDir = path.join(dir, 'out');
      const result = await converter.convert(
        { input: inputPath, outputDir, quality: model.quality as 'coarse' | 'normal' | 'fine', ...(baseDir ? { baseDir } : {}) },
        { timeoutMs: config.worker.timeoutMs, maxMemoryMb: config.worker.maxMemoryMb },
      );
      if (!result.ok) {
        const error = result.error ?? 'the conversion failed without a message';
        const code = result.code ?? 'internal';
        if (PERMANENT_CODES.has(code) || isLastAttempt(job)) {
          const message = PERMANENT_CODES.has(code) ? error : `the conversion failed after ${job.attemptsMade + 1} tries: ${code}: ${error}`;
          await models.finishFailed(modelId, attemptId, { error: message, code });
          outcome = 'failed';
          log.info({ code, error: message }, 'conversion failed');
          throw new UnrecoverableError(message);
        }
        throw new Error(`${code}: ${error}`);
      }
      await progress(80);

      const prefix = objectKeys.outputPrefix(model.project, modelId);
      await Promise.all(
        MODEL_FILES.map((file) =>
          storage.putStream(storage.modelsBucket, objectKeys.output(prefix, file), fs.createReadStream(path.join(outputDir, file)), CONTENT_TYPES[file]),
        ),
      );
      await progress(95);

      if (!(await models.finishReady(modelId, attemptId, { stats: result.stats, outputPrefix: prefix, converterVersion: version }, identity))) {
        // Deleted while we converted: remove what we stored. If another run finished it (a job
        // that was taken over while this worker was still alive), its outputs are these same files.
        if (!(await models.get(modelId, {}))) await storage.deletePrefix(storage.modelsBucket, prefix).catch(() => undefined);
        outcome = 'skipped';
        log.info('the model was deleted or finished elsewhere while converting; outputs not recorded');
        return done('skipped');
      }
      outcome = 'ready';
      log.info({ stats: result.stats, seconds: Math.round(performance.now() - t0) / 1000 }, 'conversion ready');
      return done('ready');
    } catch (err) {
      if (err instanceof UnrecoverableError) throw err;
      // A crash of the converter, or S3/PostgreSQL failing under us: try again with backoff.
      const message = (err as Error).message;
      if (isLastAttempt(job)) {
        await models.finishFailed(modelId, attemptId, { error: `the conversion failed after ${job.attemptsMade + 1} tries: ${message}`, code: 'internal' }).catch(() => undefined);
        outcome = 'failed';
      } else {
        await models.finishAttempt(attemptId, 'retry', message).catch(() => undefined);
        outcome = 'retry';
      }
      log.warn({ err, lastAttempt: isLastAttempt(job) }, 'conversion attempt failed');
      throw err;
    } finally {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      if ((outcome === 'ready' || outcome === 'reused') && deps.afterReady) await deps.afterReady(modelId).catch((err: unknown) => log.warn({ err }, 'could not queue the exports'));
      if (outcome === 'failed' && deps.afterFailed) await deps.afterFailed(modelId, 'the model failed to convert').catch(() => undefined);
      metrics.conversions.inc({ outcome });
      metrics.conversionSeconds.observe({ outcome }, (performance.now() - t0) / 1000);
    }
  };
}

export interface ConversionWorker {
  readonly worker: Worker<ConversionJobData, ConversionJobResult>;
  /** Stops taking jobs and waits for the running ones up to `timeoutMs`; then leaves them to be taken over. */
  close(timeoutMs: number): Promise<void>;
}

export function startConversionWorker(deps: WorkerDeps & { connection: Redis; queue: ConversionQueue }): ConversionWorker {
  const { config, log } = deps;
  const worker = new Worker<ConversionJobData, ConversionJobResult>(CONVERSION_QUEUE, createConversionProcessor(deps), {
    connection: deps.connection,
    prefix: bullPrefix(config.redis),
    concurrency: config.worker.concurrency,
    lockDuration: config.worker.lockMs,
    stalledInterval: config.worker.stalledIntervalMs,
    maxStalledCount: config.worker.maxStalledCount,
    name: deps.identity.node,
  });
  worker.on('error', (err) => log.warn({ err }, 'queue connection error'));
  worker.on('stalled', (jobId) => log.warn({ job: jobId }, 'took over a job whose worker stopped renewing its lock'));

  // A job that stalls more often than allowed (its input kills the worker each time) fails in
  // Redis without reaching a processor; record that on the model.
  const eventsConnection = deps.connection.duplicate();
  const events = new QueueEvents(CONVERSION_QUEUE, { connection: eventsConnection, prefix: bullPrefix(config.redis) });
  events.on('error', () => undefined);
  events.on('failed', ({ jobId, failedReason }) => {
    void (async () => {
      if ((await deps.queue.state(jobId)) !== 'failed') return;
      const stalled = /stalled/i.test(failedReason);
      const error = stalled
        ? `the conversion was interrupted more than ${config.worker.maxStalledCount} times because the worker running it stopped (a crash or a lost host); giving up`
        : failedReason;
      if (await deps.models.finishFailed(jobId, undefined, { error, code: stalled ? 'worker-lost' : 'internal' })) {
        await deps.afterFailed?.(jobId, 'the model failed to convert').catch(() => undefined);
        log.warn({ model: jobId, reason: failedReason }, 'job failed outside a processor; model marked failed');
      }
    })().catch((err: unknown) => log.warn({ err }, 'could not record a failed job'));
  });

  // Models whose job Redis lost (a failover without persistence, an enqueue that failed after
  // the row was written) are queued again; the job id makes this idempotent.
  let sweep: NodeJS.Timeout | undefined;
  if (config.worker.requeueAfterMs > 0) {
    sweep = setInterval(() => {
      void (async () => {
        for (const model of await deps.models.staleQueued(config.worker.requeueAfterMs)) {
          if (await deps.queue.has(model.id)) continue;
          await deps.queue.enqueue(model);
          log.warn({ model: model.id }, 'queued model had no job in Redis; enqueued it again');
        }
      })().catch((err: unknown) => log.debug({ err }, 'requeue sweep failed'));
    }, Math.max(1000, config.worker.requeueAfterMs / 2));
    sweep.unref();
  }

  return {
    worker,
    async close(timeoutMs) {
      if (sweep) clearInterval(sweep);
      let timer: NodeJS.Timeout | undefined;
      const graceful = worker.close().then(() => 'closed' as const);
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
      if ((await Promise.race([graceful, timeout])) === 'timeout') {
        log.warn({ timeoutMs }, 'running jobs did not finish in time; leaving them to another worker');
        await worker.close(true);
      }
      clearTimeout(timer);
      await events.close().catch(() => undefined);
      eventsConnection.disconnect();
    },
  };
}

export const workerIdentity = (node: string): WorkerIdentity => ({ node, host: os.hostname(), pid: process.pid });
