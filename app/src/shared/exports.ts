// Export jobs, as the api asks for them and the worker runs them: rows in model_exports, one
// BullMQ job each on the `exports` queue (job id `<model id>.<format>`, so asking twice queues
// once). The worker's processor is worker/exports.ts.
import { Queue } from 'bullmq';
import type { Config } from './config';
import type { Db } from './db';
import type { Model } from './models';
import { bullPrefix, jobDefaults } from './queue';
import type { Redis } from './redis';
import { objectKeys } from './storage';
import { TARGET_FILES, type Target } from '../converter/export/index';

export const EXPORT_QUEUE = 'exports';

export interface ModelExport {
  modelId: string;
  format: Target;
  state: 'queued' | 'converting' | 'ready' | 'failed';
  error: string | null;
  errorCode: string | null;
  objectKey: string | null;
  bytes: number | null;
  triangles: number | null;
  seconds: number | null;
  attempts: number;
  createdAt: Date;
  finishedAt: Date | null;
}

interface Row {
  model_id: string;
  format: Target;
  state: ModelExport['state'];
  error: string | null;
  error_code: string | null;
  object_key: string | null;
  bytes: string | null;
  triangles: number | null;
  seconds: number | null;
  attempts: number;
  created_at: Date;
  finished_at: Date | null;
}

const fromRow = (r: Row): ModelExport => ({
  modelId: r.model_id,
  format: r.format,
  state: r.state,
  error: r.error,
  errorCode: r.error_code,
  objectKey: r.object_key,
  bytes: r.bytes === null ? null : Number(r.bytes),
  triangles: r.triangles,
  seconds: r.seconds,
  attempts: r.attempts,
  createdAt: r.created_at,
  finishedAt: r.finished_at,
});

export const exportKey = (model: Pick<Model, 'project' | 'id'>, format: Target): string => `${objectKeys.outputPrefix(model.project, model.id)}exports/${TARGET_FILES[format].file}`;

export interface ExportStore {
  /** Rows for `formats` (existing ones kept; a failed one is queued again). Returns them. */
  request(modelId: string, formats: Target[]): Promise<ModelExport[]>;
  list(modelId: string): Promise<ModelExport[]>;
  get(modelId: string, format: Target): Promise<ModelExport | undefined>;
  /** Queued exports of a model that can run now (the model is ready). */
  queued(modelId: string): Promise<ModelExport[]>;
  /** The model failed: its waiting exports cannot be made. */
  failWaiting(modelId: string, reason: string): Promise<void>;
  start(modelId: string, format: Target, host: string): Promise<boolean>;
  finish(modelId: string, format: Target, outcome: { state: 'ready' | 'failed' | 'queued'; error?: string; code?: string; objectKey?: string; bytes?: number; triangles?: number; seconds?: number }): Promise<void>;
}

export function createExportStore(db: Db): ExportStore {
  return {
    async request(modelId, formats) {
      if (formats.length === 0) return [];
      const { rows } = await db.query<Row>(
        `INSERT INTO model_exports (model_id, format) SELECT $1, unnest($2::text[])
         ON CONFLICT (model_id, format) DO UPDATE SET state = 'queued', error = NULL, error_code = NULL, finished_at = NULL
           WHERE model_exports.state = 'failed'
         RETURNING *`,
        [modelId, formats],
      );
      const all = await this.list(modelId);
      void rows;
      return all.filter((e) => formats.includes(e.format));
    },
    async list(modelId) {
      const { rows } = await db.query<Row>('SELECT * FROM model_exports WHERE model_id = $1 ORDER BY format', [modelId]);
      return rows.map(fromRow);
    },
    async get(modelId, format) {
      const { rows } = await db.query<Row>('SELECT * FROM model_exports WHERE model_id = $1 AND format = $2', [modelId, format]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async queued(modelId) {
      const { rows } = await db.query<Row>(
        `SELECT e.* FROM model_exports e JOIN models m ON m.id = e.model_id WHERE e.model_id = $1 AND e.state = 'queued' AND m.state = 'ready'`,
        [modelId],
      );
      return rows.map(fromRow);
    },
    async failWaiting(modelId, reason) {
      await db.query(`UPDATE model_exports SET state = 'failed', error = $2, error_code = 'model-failed', finished_at = now() WHERE model_id = $1 AND state = 'queued'`, [modelId, reason]);
    },
    async start(modelId, format, host) {
      const { rowCount } = await db.query(
        `UPDATE model_exports SET state = 'converting', attempts = attempts + 1, started_at = now(), worker_host = $3 WHERE model_id = $1 AND format = $2 AND state IN ('queued', 'converting')`,
        [modelId, format, host],
      );
      return (rowCount ?? 0) > 0;
    },
    async finish(modelId, format, o) {
      await db.query(
        `UPDATE model_exports SET state = $3, error = $4, error_code = $5, object_key = $6, bytes = $7, triangles = $8, seconds = $9,
           finished_at = CASE WHEN $3 = 'queued' THEN NULL ELSE now() END
         WHERE model_id = $1 AND format = $2`,
        [modelId, format, o.state, o.error ?? null, o.code ?? null, o.objectKey ?? null, o.bytes ?? null, o.triangles ?? null, o.seconds ?? null],
      );
    },
  };
}

export interface ExportQueue {
  enqueue(modelId: string, formats: Target[]): Promise<void>;
  close(): Promise<void>;
}

export function createExportQueue(connection: Redis, config: Pick<Config, 'redis' | 'worker'>): ExportQueue {
  const queue = new Queue<{ modelId: string; format: Target }>(EXPORT_QUEUE, {
    connection,
    prefix: bullPrefix(config.redis),
    defaultJobOptions: jobDefaults(config),
  });
  queue.on('error', () => undefined);
  return {
    async enqueue(modelId, formats) {
      // A job id stays taken while BullMQ keeps the finished job: an export asked for again
      // after it failed would be ignored. Finished jobs go first; a waiting or running one stays.
      for (const format of formats) {
        const job = await queue.getJob(`${modelId}.${format}`);
        if (job && ((await job.isFailed()) || (await job.isCompleted()))) await job.remove().catch(() => undefined);
      }
      if (formats.length) await queue.addBulk(formats.map((format) => ({ name: 'export', data: { modelId, format }, opts: { jobId: `${modelId}.${format}` } })));
    },
    close: () => queue.close(),
  };
}
