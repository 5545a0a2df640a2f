// Many rows at once, for the list tests and the list bench: models (and batches, deliveries)
// written by one INSERT ... SELECT from generate_series, with the triggers off (no events, no
// webhook deliveries for rows that no conversion made).
import type pg from 'pg';

export interface ModelSeed {
  count: number;
  /** One project, or with `projects` > 1, `${project}-<n>` round robin. */
  project: string;
  projects?: number;
  /** Each name is this, the row's number zero-padded to 7 digits, and `.step`. */
  name?: string;
  /**
   * Names in no relation to the rows' order on disk (the n-th row seeded gets number n x 7,919
   * modulo the count, a permutation), as uploads' names are; otherwise the name order is the table's own
   * order, which makes a name index look cheaper to the planner than it ever is in use.
   */
  scatterNames?: boolean;
  /** The newest row's creation time; each next row is one millisecond older, `sameTime` rows to a millisecond. */
  newest?: Date;
  sameTime?: number;
  batch?: string;
  /** Rows share a content SHA-256 `shaGroups` at a time (the SHA-256 of the row number modulo it). */
  shaGroups?: number;
  /**
   * How the triggers go off: for this session (a superuser's, the tests'), or for the table in
   * the seeding transaction (the table's owner, the app's own user on a fleet: others wait).
   */
  triggersOff?: 'session' | 'table';
  /** The rows get numbers from this one on (seeding in steps). */
  from?: number;
}

/** Runs `fn` on one connection with triggers and foreign-key checks off (a superuser's session). */
export async function withoutTriggers<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('SET session_replication_role = replica');
    return await fn(client);
  } finally {
    await client.query('RESET session_replication_role').catch(() => undefined);
    client.release();
  }
}

/** The same with the table's triggers disabled inside the transaction (the table's owner may). */
async function withTableTriggersOff<T>(pool: pg.Pool, table: string, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    await client.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
    const result = await fn(client);
    await client.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

export async function seedModels(pool: pg.Pool, s: ModelSeed): Promise<void> {
  const projects = s.projects ?? 1;
  const off = s.triggersOff === 'table' ? <T>(fn: (c: pg.PoolClient) => Promise<T>) => withTableTriggersOff(pool, 'models', fn) : <T>(fn: (c: pg.PoolClient) => Promise<T>) => withoutTriggers(pool, fn);
  await off((client) =>
    client.query(
      `INSERT INTO models (id, project, name, format, quality, state, progress, input_key, input_bytes, content_sha256, batch_id, created_at, updated_at)
       SELECT gen_random_uuid(),
              CASE WHEN $2::int > 1 THEN $1 || '-' || (i % $2::int) ELSE $1 END,
              $3 || lpad((CASE WHEN $10::boolean THEN $9::int + ((i - $9::int)::bigint * 7919) % $8::int ELSE i END)::text, 7, '0') || '.step', 'step', 'normal',
              (ARRAY['queued', 'converting', 'ready', 'failed'])[1 + i % 4], 0, 'uploads/seed/' || i, 1000 + i,
              encode(sha256(convert_to((i % $6::int)::text, 'UTF8')), 'hex'),
              $7::uuid,
              $4::timestamptz - (i / $5::int) * interval '1 millisecond',
              $4::timestamptz
       FROM generate_series($9::int, $9::int + $8::int - 1) AS i`,
      [s.project, projects, s.name ?? 'part-', (s.newest ?? new Date()).toISOString(), s.sameTime ?? 1, s.shaGroups ?? 1_000_000_000, s.batch ?? null, s.count, s.from ?? 0, s.scatterNames ?? false],
    ),
  );
}

/** `count` batches of a project (or `projects` of them, round robin), one millisecond apart. */
export async function seedBatches(pool: pg.Pool, s: { count: number; project: string; projects?: number; newest?: Date }): Promise<void> {
  await withoutTriggers(pool, (client) =>
    client.query(
      `INSERT INTO batches (id, project, name, state, created_at)
       SELECT gen_random_uuid(), CASE WHEN $2::int > 1 THEN $1 || '-' || (i % $2::int) ELSE $1 END, 'batch-' || i, 'open',
              $3::timestamptz - i * interval '1 millisecond'
       FROM generate_series(0, $4::int - 1) AS i`,
      [s.project, s.projects ?? 1, (s.newest ?? new Date()).toISOString(), s.count],
    ),
  );
}

/**
 * `count` deliveries to each of `webhooks` endpoints (made here, of `project`), of as many events:
 * returns the endpoints' ids.
 */
export async function seedDeliveries(pool: pg.Pool, s: { project: string; webhooks: number; count: number }): Promise<string[]> {
  return withoutTriggers(pool, async (client) => {
    const hooks = await client.query<{ id: string }>(
      `INSERT INTO webhooks (id, project, url, secret, events)
       SELECT gen_random_uuid(), $1, 'https://hooks.example.test/' || i, 'seed', ARRAY['model.ready']
       FROM generate_series(1, $2::int) AS i RETURNING id`,
      [s.project, s.webhooks],
    );
    // Events already dispatched, deliveries already delivered: a running api sends none of them.
    await client.query(
      `WITH e AS (
         INSERT INTO model_events (project, type, model_id, data, dispatched_at)
         SELECT $1, 'model.ready', gen_random_uuid(), '{}'::jsonb, now() FROM generate_series(1, $3::int) RETURNING id
       )
       INSERT INTO webhook_deliveries (id, webhook_id, event_id, state, created_at)
       SELECT gen_random_uuid(), w.id, e.id, 'delivered', now() - (e.id - (SELECT min(id) FROM e)) * interval '1 millisecond'
       FROM unnest($2::uuid[]) AS w(id), e`,
      [s.project, hooks.rows.map((r) => r.id), s.count],
    );
    return hooks.rows.map((r) => r.id);
  });
}

/** Deletes the models of the projects that match `projectPattern` (LIKE), with no events (the table's owner may). */
export async function deleteSeeded(pool: pg.Pool, projectPattern: string): Promise<number> {
  return withTableTriggersOff(pool, 'models', async (client) => (await client.query('DELETE FROM models WHERE project LIKE $1', [projectPattern])).rowCount ?? 0);
}
