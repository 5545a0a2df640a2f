// Webhook endpoints, their deliveries and the model events they carry, in PostgreSQL.
import { randomUUID } from 'node:crypto';
import type { Db } from '../db';
import { type BatchRecord, batchFromJson } from '../batches';
import { type Model, type Scope, isModelId, modelFromJson } from '../models';
import { type Page, type PageRequest, Where, pageOf } from '../pages';

export const EVENT_TYPES = ['model.queued', 'model.converting', 'model.ready', 'model.failed', 'model.deleted', 'batch.ended'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface ModelEvent {
  id: number;
  project: string;
  type: EventType;
  /** model.* events: the model as it was at the change. */
  model?: Model;
  /** batch.ended: the batch with its counts. */
  batch?: BatchRecord;
  createdAt: Date;
}

export interface Webhook {
  id: string;
  project: string;
  url: string;
  secret: string;
  events: EventType[];
  description: string | null;
  createdAt: Date;
}

export interface Delivery {
  id: string;
  webhookId: string;
  eventId: number;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: Date;
  lastAttemptAt: Date | null;
  deliveredAt: Date | null;
}

interface EventRow {
  id: string;
  project: string;
  type: EventType;
  data: Record<string, unknown>;
  created_at: Date;
}
const eventFromRow = (r: EventRow): ModelEvent => ({
  id: Number(r.id),
  project: r.project,
  type: r.type,
  ...(r.type === 'batch.ended' ? { batch: batchFromJson(r.data) } : { model: modelFromJson(r.data) }),
  createdAt: r.created_at,
});

interface WebhookRow {
  id: string;
  project: string;
  url: string;
  secret: string;
  events: EventType[];
  description: string | null;
  created_at: Date;
}
const webhookFromRow = (r: WebhookRow): Webhook => ({ id: r.id, project: r.project, url: r.url, secret: r.secret, events: r.events, description: r.description, createdAt: r.created_at });

interface DeliveryRow {
  id: string;
  webhook_id: string;
  event_id: string;
  state: Delivery['state'];
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  created_at: Date;
  last_attempt_at: Date | null;
  delivered_at: Date | null;
}
const deliveryFromRow = (r: DeliveryRow): Delivery => ({
  id: r.id,
  webhookId: r.webhook_id,
  eventId: Number(r.event_id),
  state: r.state,
  attempts: r.attempts,
  lastStatus: r.last_status,
  lastError: r.last_error,
  createdAt: r.created_at,
  lastAttemptAt: r.last_attempt_at,
  deliveredAt: r.delivered_at,
});

export interface WebhookStore {
  create(w: { project: string; url: string; secret: string; events: EventType[]; description?: string; createdByKey?: string }): Promise<Webhook>;
  list(scope: Scope): Promise<Webhook[]>;
  get(id: string, scope: Scope): Promise<Webhook | undefined>;
  remove(id: string, scope: Scope): Promise<boolean>;
  /** A page of an endpoint's deliveries, newest first. */
  deliveries(webhookId: string, page: PageRequest): Promise<Page<Delivery>>;
  /** Events after `afterId`, of one project (or all for an admin), oldest first. */
  eventsAfter(afterId: number, scope: Scope, limit: number): Promise<ModelEvent[]>;
  /** The newest event id (where a new stream starts). */
  lastEventId(): Promise<number>;
  /**
   * Turns undispatched events into deliveries, one per subscribed endpoint, and marks them
   * dispatched, in one transaction; rows locked with SKIP LOCKED, so several dispatchers share.
   */
  dispatch(limit: number): Promise<Array<{ delivery: string; event: number }>>;
  /** A delivery with what sending it needs; undefined when its endpoint was deleted. */
  forSending(deliveryId: string): Promise<{ delivery: Delivery; webhook: Webhook; event: ModelEvent } | undefined>;
  recordAttempt(deliveryId: string, outcome: { status?: number; error?: string; state: Delivery['state'] }): Promise<void>;
  /** Deletes dispatched events older than `hours` (their deliveries go with them). */
  prune(hours: number): Promise<number>;
}

export function createWebhookStore(db: Db): WebhookStore {
  return {
    async create(w) {
      const { rows } = await db.query<WebhookRow>(
        `INSERT INTO webhooks (id, project, url, secret, events, description, created_by_key) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
        [randomUUID(), w.project, w.url, w.secret, w.events, w.description ?? null, w.createdByKey ?? null],
      );
      return webhookFromRow(rows[0]!);
    },
    async list(scope) {
      const { rows } = await db.query<WebhookRow>('SELECT * FROM webhooks WHERE ($1::text IS NULL OR project = $1) ORDER BY created_at', [scope.project ?? null]);
      return rows.map(webhookFromRow);
    },
    async get(id, scope) {
      if (!isModelId(id)) return undefined;
      const { rows } = await db.query<WebhookRow>('SELECT * FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR project = $2)', [id, scope.project ?? null]);
      return rows[0] ? webhookFromRow(rows[0]) : undefined;
    },
    async remove(id, scope) {
      if (!isModelId(id)) return false;
      const { rowCount } = await db.query('DELETE FROM webhooks WHERE id = $1 AND ($2::text IS NULL OR project = $2)', [id, scope.project ?? null]);
      return (rowCount ?? 0) > 0;
    },
    async deliveries(webhookId, page) {
      const where = new Where().add('webhook_id = ?', webhookId).after(page.after);
      const limit = where.limitOf(page);
      const { rows } = await db.query<DeliveryRow & { cursor_at: string }>(
        `SELECT *, created_at::text AS cursor_at FROM webhook_deliveries ${where} ORDER BY created_at DESC, id DESC LIMIT ${limit}`,
        where.params,
      );
      return pageOf(rows, page, deliveryFromRow);
    },
    async eventsAfter(afterId, scope, limit) {
      const { rows } = await db.query<EventRow>(
        'SELECT * FROM model_events WHERE id > $1 AND ($2::text IS NULL OR project = $2) ORDER BY id LIMIT $3',
        [afterId, scope.project ?? null, limit],
      );
      return rows.map(eventFromRow);
    },
    async lastEventId() {
      const { rows } = await db.query<{ id: string | null }>('SELECT max(id) AS id FROM model_events');
      return Number(rows[0]?.id ?? 0);
    },
    async dispatch(limit) {
      return db.tx(async (client) => {
        const events = await client.query<{ id: string; project: string; type: string }>(
          'SELECT id, project, type FROM model_events WHERE dispatched_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED',
          [limit],
        );
        if (events.rows.length === 0) return [];
        const ids = events.rows.map((e) => e.id);
        const created = await client.query<{ id: string; event_id: string }>(
          `INSERT INTO webhook_deliveries (id, webhook_id, event_id)
           SELECT gen_random_uuid(), w.id, e.id FROM model_events e JOIN webhooks w ON w.project = e.project AND e.type = ANY (w.events)
           WHERE e.id = ANY ($1::bigint[])
           ON CONFLICT (webhook_id, event_id) DO NOTHING
           RETURNING id, event_id`,
          [ids],
        );
        await client.query('UPDATE model_events SET dispatched_at = now() WHERE id = ANY ($1::bigint[])', [ids]);
        return created.rows.map((r) => ({ delivery: r.id, event: Number(r.event_id) }));
      });
    },
    async forSending(deliveryId) {
      const { rows } = await db.query<DeliveryRow & { w: WebhookRow; e: EventRow }>(
        `SELECT d.*, to_jsonb(w) AS w, to_jsonb(e) AS e FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN model_events e ON e.id = d.event_id WHERE d.id = $1`,
        [deliveryId],
      );
      const r = rows[0];
      if (!r) return undefined;
      return {
        delivery: deliveryFromRow(r),
        webhook: webhookFromRow({ ...r.w, created_at: new Date(String(r.w.created_at)) }),
        event: eventFromRow({ ...r.e, created_at: new Date(String(r.e.created_at)) }),
      };
    },
    async recordAttempt(deliveryId, outcome) {
      await db.query(
        `UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2, last_error = $3, state = $4, last_attempt_at = now(),
           delivered_at = CASE WHEN $4 = 'delivered' THEN now() ELSE delivered_at END
         WHERE id = $1`,
        [deliveryId, outcome.status ?? null, outcome.error ?? null, outcome.state],
      );
    },
    async prune(hours) {
      const { rowCount } = await db.query(`DELETE FROM model_events WHERE dispatched_at IS NOT NULL AND created_at < now() - make_interval(hours => $1)`, [hours]);
      return rowCount ?? 0;
    },
  };
}
