// Batches: create one, upload into it (its models wait, queued without a job), start it (every
// model is queued for conversion at once), follow one status (counts by state). When every model
// of a started batch has ended, a trigger ends the batch and writes one `batch.ended` event,
// which webhooks and the event stream carry (app/migrations: cadfleet_batch_check).
import { randomUUID } from 'node:crypto';
import type { Db } from './db';
import { type Page, type PageRequest, Where, pageOf } from './pages';
import { MODEL_STATES, type Model, type ModelState, type Scope, isModelId, modelFromJson } from './models';

export interface BatchRecord {
  id: string;
  project: string;
  name: string | null;
  state: 'open' | 'started' | 'ended';
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  /** Models by state; set when read with counts (and in batch.ended events). */
  counts?: Record<ModelState, number>;
}

interface Row {
  id: string;
  project: string;
  name: string | null;
  state: BatchRecord['state'];
  created_at: Date | string;
  started_at: Date | string | null;
  ended_at: Date | string | null;
  counts?: Record<ModelState, number | string>;
}

const date = (v: Date | string | null): Date | null => (v === null ? null : new Date(v));

function fromRow(r: Row): BatchRecord {
  return {
    id: r.id,
    project: r.project,
    name: r.name,
    state: r.state,
    createdAt: date(r.created_at)!,
    startedAt: date(r.started_at),
    endedAt: date(r.ended_at),
    ...(r.counts ? { counts: Object.fromEntries(MODEL_STATES.map((s) => [s, Number(r.counts![s] ?? 0)])) as Record<ModelState, number> } : {}),
  };
}

/** A batch from an event's JSON (to_jsonb of the row, with counts). */
export const batchFromJson = (json: Record<string, unknown>): BatchRecord => fromRow(json as unknown as Row);

export function batchView(b: BatchRecord) {
  const counts = b.counts ?? { queued: 0, converting: 0, ready: 0, failed: 0 };
  return {
    id: b.id,
    name: b.name ?? undefined,
    state: b.state,
    total: Object.values(counts).reduce((n, c) => n + c, 0),
    counts,
    createdAt: b.createdAt.toISOString(),
    ...(b.startedAt ? { startedAt: b.startedAt.toISOString() } : {}),
    ...(b.endedAt ? { endedAt: b.endedAt.toISOString() } : {}),
  };
}

export interface BatchStore {
  create(b: { project: string; name?: string; createdByKey?: string }): Promise<BatchRecord>;
  /** With counts. */
  get(id: string, scope: Scope): Promise<BatchRecord | undefined>;
  /** A page of batches, newest first, with counts. */
  list(scope: Scope, page: PageRequest): Promise<Page<BatchRecord>>;
  /**
   * Open -> started, returning the models to queue; undefined when it was not open. A batch
   * whose models have all ended already (all reused, say) ends at once.
   */
  start(id: string, scope: Scope): Promise<{ batch: BatchRecord; toQueue: Model[] } | undefined>;
}

const COUNTS = `(SELECT jsonb_build_object('queued', count(*) FILTER (WHERE m.state = 'queued'), 'converting', count(*) FILTER (WHERE m.state = 'converting'),
  'ready', count(*) FILTER (WHERE m.state = 'ready'), 'failed', count(*) FILTER (WHERE m.state = 'failed')) FROM models m WHERE m.batch_id = b.id) AS counts`;

export function createBatchStore(db: Db): BatchStore {
  return {
    async create(b) {
      const { rows } = await db.query<Row>('INSERT INTO batches (id, project, name, created_by_key) VALUES ($1, $2, $3, $4) RETURNING *', [randomUUID(), b.project, b.name ?? null, b.createdByKey ?? null]);
      return { ...fromRow(rows[0]!), counts: { queued: 0, converting: 0, ready: 0, failed: 0 } };
    },
    async get(id, scope) {
      if (!isModelId(id)) return undefined;
      const { rows } = await db.query<Row>(`SELECT b.*, ${COUNTS} FROM batches b WHERE b.id = $1 AND ($2::text IS NULL OR b.project = $2)`, [id, scope.project ?? null]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async list(scope, page) {
      // A statement for a project key and one for an admin key, each with its index.
      const where = new Where();
      if (scope.project !== undefined) where.add('b.project = ?', scope.project);
      where.after(page.after, 'b.');
      const limit = where.limitOf(page);
      const { rows } = await db.query<Row & { cursor_at: string }>(
        `SELECT b.*, b.created_at::text AS cursor_at, ${COUNTS} FROM batches b ${where} ORDER BY b.created_at DESC, b.id DESC LIMIT ${limit}`,
        where.params,
      );
      return pageOf(rows, page, fromRow);
    },
    async start(id, scope) {
      if (!isModelId(id)) return undefined;
      return db.tx(async (client) => {
        const { rows } = await client.query<Row>(
          `UPDATE batches SET state = 'started', started_at = now() WHERE id = $1 AND ($2::text IS NULL OR project = $2) AND state = 'open' RETURNING *`,
          [id, scope.project ?? null],
        );
        if (!rows[0]) return undefined;
        const models = await client.query<Record<string, unknown>>(`SELECT to_jsonb(m) AS m FROM models m WHERE batch_id = $1 AND state = 'queued'`, [id]);
        await client.query('SELECT cadfleet_batch_check($1)', [id]);
        return { batch: fromRow(rows[0]), toQueue: models.rows.map((r) => modelFromJson(r.m as Record<string, unknown>)) };
      });
    },
  };
}
