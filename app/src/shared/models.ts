// Models and their conversion state in PostgreSQL. Every read and write that a request makes
// is scoped to the caller's project; `project: undefined` means an admin key.
import type { ConvertStats } from '../converter/types';
import type { Db } from './db';
import { type Page, type PageRequest, Where, pageOf } from './pages';

export const MODEL_STATES = ['queued', 'converting', 'ready', 'failed'] as const;
export type ModelState = (typeof MODEL_STATES)[number];

/** The converter's own stats (result.json), stored with the model. */
export type ConversionStats = ConvertStats;

export interface Model {
  id: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  state: ModelState;
  progress: number;
  error: string | null;
  errorCode: string | null;
  inputKey: string;
  inputBytes: number;
  outputPrefix: string | null;
  stats: ConversionStats | null;
  attempts: number;
  workerHost: string | null;
  workerNode: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  updatedAt: Date;
  /** 'zip' when the upload is an archive; `format` is then its root file's. */
  archive: string | null;
  archiveRoot: string | null;
  contentSha256: string | null;
  converterVersion: string | null;
  reusedFrom: string | null;
  reuse: boolean;
  batchId: string | null;
}

/** What a model list may be narrowed to; each served by an index (app/migrations: list-indexes). */
export interface ModelFilters {
  state?: ModelState;
  /** Names that start with these characters (case-sensitive). */
  namePrefix?: string;
  /** The SHA-256 of the uploaded bytes, lowercase hex. */
  sha256?: string;
  batch?: string;
  /** Created at or after. */
  createdAfter?: Date;
  /** Created before. */
  createdBefore?: Date;
}

/**
 * The smallest string greater than every string that starts with `prefix`, in byte order (the
 * "C" collation, which compares UTF-8 bytes, the order of code points): the prefix with its last
 * code point one higher. Undefined when none is (a prefix of U+10FFFF only).
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) return points.join('') + String.fromCodePoint(last + 1 === 0xd800 ? 0xe000 : last + 1);
  }
  return undefined;
}

/** Who asks: a project's key sees its project; an admin key (project undefined) sees all. */
export interface Scope {
  project?: string;
}

export interface WorkerIdentity {
  node: string;
  host: string;
  pid: number;
}

interface Row {
  id: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  state: ModelState;
  progress: number;
  error: string | null;
  error_code: string | null;
  input_key: string;
  input_bytes: string;
  output_prefix: string | null;
  stats: ConversionStats | null;
  attempts: number;
  worker_host: string | null;
  worker_node: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  updated_at: Date;
  archive: string | null;
  archive_root: string | null;
  content_sha256: string | null;
  converter_version: string | null;
  reused_from: string | null;
  reuse: boolean;
  batch_id: string | null;
}

const fromRow = (r: Row): Model => ({
  id: r.id,
  project: r.project,
  name: r.name,
  format: r.format,
  quality: r.quality,
  state: r.state,
  progress: r.progress,
  error: r.error,
  errorCode: r.error_code,
  inputKey: r.input_key,
  inputBytes: Number(r.input_bytes),
  outputPrefix: r.output_prefix,
  stats: r.stats,
  attempts: r.attempts,
  workerHost: r.worker_host,
  workerNode: r.worker_node,
  createdAt: r.created_at,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  updatedAt: r.updated_at,
  archive: r.archive,
  archiveRoot: r.archive_root,
  contentSha256: r.content_sha256,
  converterVersion: r.converter_version,
  reusedFrom: r.reused_from,
  reuse: r.reuse,
  batchId: r.batch_id ?? null,
});

/** A model from the row as JSON (to_jsonb in the event trigger): timestamps come as strings. */
export function modelFromJson(json: Record<string, unknown>): Model {
  const date = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(String(v)));
  return fromRow({
    ...(json as unknown as Row),
    created_at: date(json.created_at)!,
    started_at: date(json.started_at),
    finished_at: date(json.finished_at),
    updated_at: date(json.updated_at)!,
  });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** Ids that are not UUIDs cannot exist; checking first keeps them away from a uuid cast error. */
export const isModelId = (id: string): boolean => UUID.test(id);

export interface NewModel {
  id: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  inputKey: string;
  inputBytes: number;
  createdByKey?: string;
  archive?: string;
  archiveRoot?: string;
  contentSha256?: string;
  /** @default true */
  reuse?: boolean;
  /** An open batch holds its models (no job) until it starts. */
  batchId?: string;
}

/** What makes two conversions the same: the bytes, the file opened, the options and the converter. */
export interface ReuseKey {
  project: string;
  contentSha256: string;
  format: string;
  archiveRoot: string | null;
  quality: string;
  converterVersion: string;
}

export interface ModelRepository {
  create(m: NewModel): Promise<Model>;
  /** A ready model of the same project converted from the same bytes with the same options, if any. */
  findReusable(key: ReuseKey): Promise<Model | undefined>;
  /**
   * Creates `m` ready at once, pointing at `source`'s stored outputs. Undefined when the source is
   * no longer ready (deleted meanwhile): the caller converts instead. The source row is locked
   * for the insert, so a delete of the source either comes first or sees this model.
   */
  createReused(m: NewModel, sourceId: string): Promise<Model | undefined>;
  /** A worker ends a conversion by pointing at another model's outputs (same bytes, found after the download). */
  finishReused(id: string, attemptId: string, sourceId: string): Promise<boolean>;
  setContentHash(id: string, sha256: string): Promise<void>;
  /** Models (any project) whose outputs live under `prefix`. */
  countUsingOutputs(prefix: string): Promise<number>;
  get(id: string, scope: Scope): Promise<Model | undefined>;
  /** A page of models, newest first. */
  list(scope: Scope, filters: ModelFilters, page: PageRequest): Promise<Page<Model>>;
  remove(id: string, scope: Scope): Promise<Model | undefined>;
  countByState(): Promise<Record<ModelState, number>>;
  /** Queued models older than `olderThanMs`, for re-enqueueing jobs that Redis lost. */
  staleQueued(olderThanMs: number, limit?: number): Promise<Model[]>;

  /** A worker starts (or restarts) the conversion. Undefined when the model is gone or already done. */
  startConversion(id: string, jobId: string, attempt: number, worker: WorkerIdentity): Promise<{ model: Model; attemptId: string } | undefined>;
  setProgress(id: string, progress: number): Promise<void>;
  /** Records success; false when the model was deleted meanwhile or another run already finished it. */
  finishReady(id: string, attemptId: string, result: { stats: ConversionStats; outputPrefix: string; converterVersion: string }, worker: WorkerIdentity): Promise<boolean>;
  finishFailed(id: string, attemptId: string | undefined, failure: { error: string; code: string }): Promise<boolean>;
  /** Ends an attempt that will be retried. */
  finishAttempt(attemptId: string, outcome: 'retry' | 'skipped', error?: string): Promise<void>;
  attempts(id: string): Promise<AttemptRecord[]>;
}

export interface AttemptRecord {
  id: string;
  attempt: number;
  workerNode: string;
  workerHost: string;
  workerPid: number;
  startedAt: Date;
  finishedAt: Date | null;
  outcome: 'ready' | 'failed' | 'retry' | 'skipped' | 'lost' | 'reused' | null;
  error: string | null;
  converterSeconds: number | null;
}

export function createModelRepository(db: Db): ModelRepository {
  return {
    async create(m) {
      const { rows } = await db.query<Row>(
        `INSERT INTO models (id, project, name, format, quality, state, progress, input_key, input_bytes, created_by_key, archive, archive_root, content_sha256, reuse, batch_id)
         VALUES ($1, $2, $3, $4, $5, 'queued', 0, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [m.id, m.project, m.name, m.format, m.quality, m.inputKey, m.inputBytes, m.createdByKey ?? null, m.archive ?? null, m.archiveRoot ?? null, m.contentSha256 ?? null, m.reuse ?? true, m.batchId ?? null],
      );
      return fromRow(rows[0]!);
    },
    async findReusable(key) {
      const { rows } = await db.query<Row>(
        `SELECT * FROM models WHERE project = $1 AND content_sha256 = $2 AND state = 'ready' AND format = $3
           AND archive_root IS NOT DISTINCT FROM $4 AND quality = $5 AND converter_version = $6 AND output_prefix IS NOT NULL
         ORDER BY finished_at LIMIT 1`,
        [key.project, key.contentSha256, key.format, key.archiveRoot, key.quality, key.converterVersion],
      );
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async createReused(m, sourceId) {
      return db.tx(async (client) => {
        const source = await client.query<Row>(`SELECT * FROM models WHERE id = $1 AND project = $2 AND state = 'ready' FOR SHARE`, [sourceId, m.project]);
        const s = source.rows[0];
        if (!s?.output_prefix) return undefined;
        const { rows } = await client.query<Row>(
          `INSERT INTO models (id, project, name, format, quality, state, progress, input_key, input_bytes, created_by_key, archive, archive_root,
             content_sha256, reuse, output_prefix, stats, converter_version, reused_from, started_at, finished_at, batch_id)
           VALUES ($1, $2, $3, $4, $5, 'ready', 100, $6, $7, $8, $9, $10, $11, true, $12, $13, $14, $15, now(), now(), $16) RETURNING *`,
          [m.id, m.project, m.name, m.format, m.quality, m.inputKey, m.inputBytes, m.createdByKey ?? null, m.archive ?? null, m.archiveRoot ?? null,
            m.contentSha256 ?? null, s.output_prefix, JSON.stringify(s.stats), s.converter_version, s.id, m.batchId ?? null],
        );
        return fromRow(rows[0]!);
      });
    },
    async finishReused(id, attemptId, sourceId) {
      return db.tx(async (client) => {
        const source = await client.query<Row>(`SELECT * FROM models WHERE id = $1 AND state = 'ready' FOR SHARE`, [sourceId]);
        const s = source.rows[0];
        const { rowCount } = s?.output_prefix
          ? await client.query(
              `UPDATE models SET state = 'ready', progress = 100, stats = $2, output_prefix = $3, converter_version = $4, reused_from = $5,
                 finished_at = now(), updated_at = now()
               WHERE id = $1 AND state = 'converting'`,
              [id, JSON.stringify(s.stats), s.output_prefix, s.converter_version, s.id],
            )
          : { rowCount: 0 };
        await client.query(`UPDATE conversion_attempts SET finished_at = now(), outcome = $2 WHERE id = $1`, [attemptId, rowCount ? 'reused' : 'skipped']);
        return (rowCount ?? 0) > 0;
      });
    },
    async setContentHash(id, sha256) {
      await db.query(`UPDATE models SET content_sha256 = $2 WHERE id = $1 AND content_sha256 IS NULL`, [id, sha256]);
    },
    async countUsingOutputs(prefix) {
      const { rows } = await db.query<{ n: string }>('SELECT count(*) AS n FROM models WHERE output_prefix = $1', [prefix]);
      return Number(rows[0]!.n);
    },
    async get(id, scope) {
      if (!isModelId(id)) return undefined;
      const { rows } = await db.query<Row>('SELECT * FROM models WHERE id = $1 AND ($2::text IS NULL OR project = $2)', [id, scope.project ?? null]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async list(scope, filters, page) {
      // Only the conditions given, so that each combination is a statement of its own with a
      // plan of its own (tested with generic plans in test/service/lists.test.ts).
      const where = new Where();
      if (scope.project !== undefined) where.add('project = ?', scope.project);
      if (filters.state) where.add('state = ?', filters.state);
      if (filters.batch) where.add('batch_id = ?::uuid', filters.batch);
      if (filters.sha256) where.add('content_sha256 = ?', filters.sha256);
      if (filters.namePrefix) {
        where.add('name COLLATE "C" >= ?', filters.namePrefix);
        const end = prefixEnd(filters.namePrefix);
        if (end !== undefined) where.add('name COLLATE "C" < ?', end);
      }
      if (filters.createdAfter) where.add('created_at >= ?::timestamptz', filters.createdAfter.toISOString());
      if (filters.createdBefore) where.add('created_at < ?::timestamptz', filters.createdBefore.toISOString());
      where.after(page.after);
      const limit = where.limitOf(page);
      const { rows } = await db.query<Row & { cursor_at: string }>(
        `SELECT *, created_at::text AS cursor_at FROM models ${where} ORDER BY created_at DESC, id DESC LIMIT ${limit}`,
        where.params,
      );
      return pageOf(rows, page, fromRow);
    },
    async remove(id, scope) {
      if (!isModelId(id)) return undefined;
      const { rows } = await db.query<Row>('DELETE FROM models WHERE id = $1 AND ($2::text IS NULL OR project = $2) RETURNING *', [id, scope.project ?? null]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async countByState() {
      const { rows } = await db.query<{ state: ModelState; n: string }>('SELECT state, count(*) AS n FROM models GROUP BY state');
      const counts = Object.fromEntries(MODEL_STATES.map((s) => [s, 0])) as Record<ModelState, number>;
      for (const r of rows) counts[r.state] = Number(r.n);
      return counts;
    },
    async staleQueued(olderThanMs, limit = 100) {
      const { rows } = await db.query<Row>(
        `SELECT * FROM models m WHERE state = 'queued' AND created_at < now() - make_interval(secs => $1::double precision / 1000)
           AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.id = m.batch_id AND b.state = 'open')
         ORDER BY created_at LIMIT $2`,
        [olderThanMs, limit],
      );
      return rows.map(fromRow);
    },
    async startConversion(id, jobId, attempt, worker) {
      return db.tx(async (client) => {
        const { rows } = await client.query<Row>(
          `UPDATE models SET state = 'converting', progress = 5, error = NULL, error_code = NULL, attempts = attempts + 1,
             started_at = now(), worker_host = $2, worker_node = $3, updated_at = now()
           WHERE id = $1 AND state IN ('queued', 'converting') RETURNING *`,
          [id, worker.host, worker.node],
        );
        if (!rows[0]) return undefined;
        // A run still open here belonged to a worker that stopped without finishing it.
        await client.query(
          `UPDATE conversion_attempts SET finished_at = now(), outcome = 'lost', error = 'the worker stopped during the conversion'
           WHERE model_id = $1 AND finished_at IS NULL`,
          [id],
        );
        const inserted = await client.query<{ id: string }>(
          `INSERT INTO conversion_attempts (model_id, job_id, attempt, worker_node, worker_host, worker_pid) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
          [id, jobId, attempt, worker.node, worker.host, worker.pid],
        );
        return { model: fromRow(rows[0]), attemptId: inserted.rows[0]!.id };
      });
    },
    async setProgress(id, progress) {
      await db.query(`UPDATE models SET progress = $2, updated_at = now() WHERE id = $1 AND state = 'converting' AND progress < $2`, [id, progress]);
    },
    async finishReady(id, attemptId, result, worker) {
      return db.tx(async (client) => {
        const { rowCount } = await client.query(
          `UPDATE models SET state = 'ready', progress = 100, stats = $2, output_prefix = $3, worker_host = $4, worker_node = $5,
             converter_version = $6, finished_at = now(), updated_at = now()
           WHERE id = $1 AND state = 'converting'`,
          [id, JSON.stringify(result.stats), result.outputPrefix, worker.host, worker.node, result.converterVersion],
        );
        if (!rowCount) {
          await client.query(`UPDATE conversion_attempts SET finished_at = now(), outcome = 'skipped' WHERE id = $1`, [attemptId]);
          return false;
        }
        await client.query(`UPDATE conversion_attempts SET finished_at = now(), outcome = 'ready', converter_seconds = $2 WHERE id = $1`, [
          attemptId,
          result.stats.seconds,
        ]);
        return true;
      });
    },
    async finishFailed(id, attemptId, failure) {
      return db.tx(async (client) => {
        const { rowCount } = await client.query(
          `UPDATE models SET state = 'failed', error = $2, error_code = $3, finished_at = now(), updated_at = now()
           WHERE id = $1 AND state IN ('queued', 'converting')`,
          [id, failure.error, failure.code],
        );
        if (attemptId) {
          await client.query(`UPDATE conversion_attempts SET finished_at = now(), outcome = 'failed', error = $2 WHERE id = $1`, [attemptId, failure.error]);
        }
        return (rowCount ?? 0) > 0;
      });
    },
    async finishAttempt(attemptId, outcome, error) {
      await db.query(`UPDATE conversion_attempts SET finished_at = now(), outcome = $2, error = $3 WHERE id = $1`, [attemptId, outcome, error ?? null]);
    },
    async attempts(id) {
      const { rows } = await db.query<{
        id: string;
        attempt: number;
        worker_node: string;
        worker_host: string;
        worker_pid: number;
        started_at: Date;
        finished_at: Date | null;
        outcome: AttemptRecord['outcome'];
        error: string | null;
        converter_seconds: number | null;
      }>('SELECT * FROM conversion_attempts WHERE model_id = $1 ORDER BY id', [id]);
      return rows.map((r) => ({
        id: r.id,
        attempt: r.attempt,
        workerNode: r.worker_node,
        workerHost: r.worker_host,
        workerPid: r.worker_pid,
        startedAt: r.started_at,
        finishedAt: r.finished_at,
        outcome: r.outcome,
        error: r.error,
        converterSeconds: r.converter_seconds,
      }));
    },
  };
}
