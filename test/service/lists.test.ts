// Lists that scale: keyset pages with an opaque cursor on every list that grows without bound
// (models, batches, webhook deliveries), the model filters, and the plans PostgreSQL keeps for
// the list statements once they are reused (generic plans), on a table large enough that a
// sequential scan would show.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import type { Db } from '../../app/src/shared/db';
import { createBatchStore } from '../../app/src/shared/batches';
import { type ModelFilters, createModelRepository, prefixEnd } from '../../app/src/shared/models';
import { type PageRequest, bindingOf, decodeCursor, encodeCursor } from '../../app/src/shared/pages';
import { createWebhookStore } from '../../app/src/shared/webhooks/store';
import { type ApiClient, type AppProcess, type Harness, SAMPLES, apiClient, startHarness } from './harness';
import { seedBatches, seedDeliveries, seedModels } from '../helpers/seed-models';

let h: Harness;
let api: AppProcess;
let walker: ApiClient;
let other: ApiClient;
let admin: ApiClient;

interface Listed {
  models: Array<{ id: string; name: string; createdAt: string; state: string; sha256?: string; batch?: string }>;
  next?: string;
}
interface Refusal {
  code: string;
  message: string;
  parameter?: string;
}

beforeAll(async () => {
  h = await startHarness('lists');
  api = await h.start('api');
  walker = apiClient(api.url, await h.createKey('walk'));
  other = apiClient(api.url, await h.createKey('other'));
  admin = apiClient(api.url, await h.createKey('ops', true));
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

/** Every page of a list, following `next`; the pages' items in order. */
async function walk(client: ApiClient, path: string, during?: (page: number) => Promise<void>): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  for (;;) {
    const sep = path.includes('?') ? '&' : '?';
    const r = await client.json<Listed>('GET', cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    ids.push(...r.body.models.map((m) => m.id));
    pages++;
    if (!r.body.next) return { ids, pages };
    cursor = r.body.next;
    await during?.(pages);
  }
}

/** The ids of a project's models as the list must order them: newest first, then by id descending. */
async function expectedOrder(where: string, params: unknown[]): Promise<string[]> {
  const { rows } = await h.db.query<{ id: string }>(`SELECT id FROM models WHERE ${where} ORDER BY created_at DESC, id DESC`, params);
  return rows.map((r) => r.id);
}

describe('model pages', () => {
  it('walks 2,500 models page by page, each exactly once and in order, while others are uploaded during the walk', async () => {
    // Three models to each millisecond: the order within one is the id's.
    await seedModels(h.db, { count: 2500, project: 'walk', newest: new Date(Date.now() - 60_000), sameTime: 3 });
    const before = await expectedOrder('project = $1', ['walk']);
    expect(before).toHaveLength(2500);
    const uploaded: string[] = [];
    // New models (newer than every page) arrive between the pages: with OFFSET each would shift
    // the rest of the list by one and a model would come twice.
    const { ids, pages } = await walk(walker, '/api/v1/models?limit=97', async (page) => {
      if (page % 5 !== 0) return;
      const up = await walker.upload(SAMPLES.cube, { name: `during-${page}.stp` });
      expect(up.status, JSON.stringify(up.body)).toBe(201);
      uploaded.push(String(up.body.id));
    });
    expect(uploaded.length).toBeGreaterThanOrEqual(4);
    expect(pages).toBe(Math.ceil(2500 / 97));
    expect(new Set(ids).size).toBe(ids.length);
    // Exactly the models that were there when the walk began, in the list's order.
    expect(ids).toEqual(before);
    // The uploads are at the top of a new walk.
    const again = await walk(walker, '/api/v1/models?limit=1000');
    expect(again.ids.slice(0, uploaded.length).sort()).toEqual([...uploaded].sort());
    expect(again.ids.slice(uploaded.length)).toEqual(before);
  }, 180_000);

  it('filters by state, name prefix, content hash, batch and creation time, each page of a filter walked with its own cursor', async () => {
    const newest = new Date(Date.now() - 3_600_000);
    await seedModels(h.db, { count: 400, project: 'other', name: 'gear-', newest, shaGroups: 7 });
    await seedModels(h.db, { count: 300, project: 'other', name: 'gearbox-', newest: new Date(newest.getTime() - 1000) });
    await seedModels(h.db, { count: 250, project: 'other', name: 'Gear-', newest: new Date(newest.getTime() - 2000) });
    const batch = (await other.json<{ id: string }>('POST', '/api/v1/batches', { body: '{}', headers: { 'content-type': 'application/json' } })).body.id;
    await seedModels(h.db, { count: 120, project: 'other', name: 'batched-', newest: new Date(newest.getTime() - 3000), batch });
    const sha = (await h.db.query<{ s: string }>("SELECT content_sha256 AS s FROM models WHERE project = 'other' AND name = 'gear-0000003.step'")).rows[0]!.s;
    const cases: Array<[string, string, unknown[]]> = [
      ['state=failed', "project = 'other' AND state = $1", ['failed']],
      // Case-sensitive, and "gear-" is not a prefix of "gearbox-".
      ['namePrefix=gear-', "project = 'other' AND name LIKE $1", ['gear-%']],
      ['namePrefix=gearbox', "project = 'other' AND name LIKE $1", ['gearbox%']],
      ['namePrefix=G', "project = 'other' AND name LIKE $1", ['G%']],
      [`sha256=${sha}`, "project = 'other' AND content_sha256 = $1", [sha]],
      [`batch=${batch}`, "project = 'other' AND batch_id = $1", [batch]],
      [
        `createdAfter=${encodeURIComponent(new Date(newest.getTime() - 2100).toISOString())}&createdBefore=${encodeURIComponent(new Date(newest.getTime() - 1900).toISOString())}`,
        "project = 'other' AND created_at >= $1 AND created_at < $2",
        [new Date(newest.getTime() - 2100), new Date(newest.getTime() - 1900)],
      ],
      ['state=ready&namePrefix=gear', "project = 'other' AND state = 'ready' AND name LIKE $1", ['gear%']],
    ];
    for (const [query, where, params] of cases) {
      const expected = await expectedOrder(where, params);
      expect(expected.length, query).toBeGreaterThan(0);
      const got = await walk(other, `/api/v1/models?limit=41&${query}`);
      expect(got.ids, query).toEqual(expected);
    }
    // Another project's key sees its own models of that content only.
    const walkers = await walk(walker, `/api/v1/models?sha256=${sha}`);
    expect(walkers.ids).toEqual(await expectedOrder("project = 'walk' AND content_sha256 = $1", [sha]));
    // An admin key's list spans projects; filtered, it finds the same content in any.
    const adminSha = await walk(admin, `/api/v1/models?sha256=${sha}&limit=10`);
    expect(adminSha.ids).toEqual(await expectedOrder('content_sha256 = $1', [sha]));
  }, 180_000);

  it('walks every project with an admin key, and pages batches and webhook deliveries the same way', async () => {
    const all = await walk(admin, '/api/v1/models?limit=1000');
    expect(all.ids).toEqual(await expectedOrder('true', []));
    expect(all.pages).toBeGreaterThan(3);

    await seedBatches(h.db, { count: 230, project: 'walk' });
    const batches: string[] = [];
    let cursor: string | undefined;
    do {
      const r = await walker.json<{ batches: Array<{ id: string }>; next?: string }>('GET', `/api/v1/batches?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      batches.push(...r.body.batches.map((b) => b.id));
      cursor = r.body.next;
    } while (cursor);
    expect(batches).toEqual((await h.db.query<{ id: string }>("SELECT id FROM batches WHERE project = 'walk' ORDER BY created_at DESC, id DESC")).rows.map((r) => r.id));

    const [hook] = await seedDeliveries(h.db, { project: 'walk', webhooks: 1, count: 333 });
    const deliveries: string[] = [];
    cursor = undefined;
    do {
      const r: { status: number; body: { deliveries: Array<{ id: string }>; next?: string } } = await walker.json('GET', `/api/v1/webhooks/${hook}/deliveries?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(r.status).toBe(200);
      deliveries.push(...r.body.deliveries.map((d) => d.id));
      cursor = r.body.next;
    } while (cursor);
    expect(deliveries).toEqual((await h.db.query<{ id: string }>('SELECT id FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC', [hook])).rows.map((r) => r.id));
  }, 120_000);
});

describe('cursors and parameters that are wrong', () => {
  const refused = async (client: ApiClient, path: string, code: string, parameter: string): Promise<Refusal> => {
    const r = await client.json<Refusal>('GET', path);
    expect(r.status, `${path}: ${JSON.stringify(r.body)}`).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.body).toMatchObject({ code, parameter });
    expect(r.body.message).toContain(parameter);
    return r.body;
  };

  it('refuses a tampered cursor, one of another project, list or filter set, and garbage, with a JSON 400 naming the parameter', async () => {
    const first = await walker.json<Listed>('GET', '/api/v1/models?limit=5');
    const next = first.body.next!;
    expect(next).toBeTruthy();
    // The cursor works as given.
    expect((await walker.json('GET', `/api/v1/models?limit=5&cursor=${encodeURIComponent(next)}`)).status).toBe(200);
    // One character of the payload changed.
    const [payload, check] = next.split('.');
    const flipped = `${payload!.slice(0, 10)}${payload![10] === 'A' ? 'B' : 'A'}${payload!.slice(11)}.${check}`;
    expect((await refused(walker, `/api/v1/models?limit=5&cursor=${encodeURIComponent(flipped)}`, 'invalid_cursor', 'cursor')).message).toMatch(/edited or cut short/);
    // A position forged with a valid check value still has to be bound to this request.
    const position = decodeCursor(next, bindingOf('models', 'walk', {}));
    await refused(walker, `/api/v1/models?cursor=${encodeCursor(position, bindingOf('models', 'other', {}))}`, 'invalid_cursor', 'cursor');
    // Another project's key, another filter, another list.
    expect((await refused(other, `/api/v1/models?limit=5&cursor=${encodeURIComponent(next)}`, 'invalid_cursor', 'cursor')).message).toMatch(/another list, another project or other filters/);
    await refused(walker, `/api/v1/models?limit=5&state=ready&cursor=${encodeURIComponent(next)}`, 'invalid_cursor', 'cursor');
    await refused(walker, `/api/v1/batches?cursor=${encodeURIComponent(next)}`, 'invalid_cursor', 'cursor');
    await refused(admin, `/api/v1/models?cursor=${encodeURIComponent(next)}`, 'invalid_cursor', 'cursor');
    for (const junk of ['x', 'a.b', '....', next.split('.')[0]!, `${next}.x`, encodeCursor({ at: 'yesterday', id: 'x' }, bindingOf('models', 'walk', {}))]) {
      await refused(walker, `/api/v1/models?cursor=${encodeURIComponent(junk)}`, 'invalid_cursor', 'cursor');
    }
  });

  it('refuses bad limits and filters, naming each', async () => {
    for (const limit of ['0', '1001', '2.5', 'ten', '']) await refused(walker, `/api/v1/models?limit=${limit}`, 'invalid_limit', 'limit');
    await refused(walker, '/api/v1/batches?limit=0', 'invalid_limit', 'limit');
    await refused(walker, '/api/v1/models?state=done', 'invalid_state', 'state');
    await refused(walker, '/api/v1/models?sha256=ABC', 'invalid_sha256', 'sha256');
    await refused(walker, `/api/v1/models?sha256=${'A'.repeat(64)}`, 'invalid_sha256', 'sha256');
    await refused(walker, '/api/v1/models?batch=nightly', 'invalid_batch', 'batch');
    await refused(walker, '/api/v1/models?namePrefix=', 'invalid_name_prefix', 'namePrefix');
    await refused(walker, `/api/v1/models?namePrefix=${'x'.repeat(256)}`, 'invalid_name_prefix', 'namePrefix');
    await refused(walker, '/api/v1/models?createdAfter=yesterday', 'invalid_time', 'createdAfter');
    await refused(walker, '/api/v1/models?createdBefore=2026-13-45T00:00:00Z', 'invalid_time', 'createdBefore');
    await refused(walker, '/api/v1/models?createdBefore=2026-12-07T10:00:00', 'invalid_time', 'createdBefore');
  });

  it('ends a name prefix range at the next string in byte order, past the last code point', () => {
    expect(prefixEnd('gear-')).toBe('gear.');
    expect(prefixEnd('a\u{10FFFF}')).toBe('b');
    expect(prefixEnd('\u{10FFFF}')).toBeUndefined();
    expect(prefixEnd('\uD7FF')).toBe('\uE000');
    expect(prefixEnd('z\u{1F600}')).toBe('z\u{1F601}');
  });
});

// The statements the stores send, captured as they are built, then planned by PostgreSQL as a
// reused prepared statement (plan_cache_mode = force_generic_plan: parameters unknown) over
// 200,000 models of 200 projects (a generic plan takes a project for 1/200 of the rows; with 20
// equal projects, reading the time index and skipping 19 rows in 20 is as cheap, and is chosen),
// names in no order on disk. A list must read an index in its order, never the whole table,
// and never sort (a sort reads every matching row before the first is returned).
describe('the plans of the list statements, generic, at 200,000 models', () => {
  const statements: Array<{ text: string; params: unknown[] }> = [];
  const recording = {
    query: async (text: string, params: unknown[] = []) => {
      statements.push({ text, params });
      return { rows: [], rowCount: 0 };
    },
  } as unknown as Db;
  const models = createModelRepository(recording);
  const batches = createBatchStore(recording);
  const hooks = createWebhookStore(recording);
  let batchId: string;
  let hookId: string;

  beforeAll(async () => {
    await seedModels(h.db, { count: 200_000, project: 'scale', projects: 200, shaGroups: 50_000, scatterNames: true });
    const batch = await h.db.query<{ id: string }>(`INSERT INTO batches (id, project) VALUES (gen_random_uuid(), 'scale-3') RETURNING id`);
    batchId = batch.rows[0]!.id;
    await seedModels(h.db, { count: 500, project: 'scale-3', name: 'in-batch-', batch: batchId });
    await seedBatches(h.db, { count: 20_000, project: 'scale', projects: 200 });
    hookId = (await seedDeliveries(h.db, { project: 'scale-3', webhooks: 4, count: 5_000 }))[0]!;
    await h.db.query('ANALYZE models; ANALYZE batches; ANALYZE webhook_deliveries');
  }, 300_000);

  const deep: PageRequest = { limit: 100, binding: 'x', after: { at: '2026-01-01 00:00:00.123456+00', id: '3f6f2a9c-1b2c-4d5e-8f90-123456789abc' } };
  const first: PageRequest = { limit: 100, binding: 'x' };

  async function plan(run: () => Promise<unknown>, mode: 'generic' | 'custom'): Promise<{ nodes: Array<Record<string, unknown>>; text: string }> {
    statements.length = 0;
    await run();
    expect(statements).toHaveLength(1);
    const { text, params } = statements[0]!;
    const client: pg.PoolClient = await h.db.connect();
    try {
      await client.query(`SET plan_cache_mode = force_${mode}_plan`);
      await client.query(`PREPARE list_statement AS ${text}`);
      const literal = (v: unknown): string => (typeof v === 'number' ? String(v) : client.escapeLiteral(String(v)));
      const { rows } = await client.query<{ 'QUERY PLAN': Array<{ Plan: Record<string, unknown> }> }>(
        `EXPLAIN (FORMAT JSON) EXECUTE list_statement(${params.map(literal).join(', ')})`,
      );
      await client.query('DEALLOCATE list_statement');
      const nodes: Array<Record<string, unknown>> = [];
      const visit = (n: Record<string, unknown>): void => {
        nodes.push(n);
        for (const c of (n.Plans as Array<Record<string, unknown>> | undefined) ?? []) visit(c);
      };
      visit(rows[0]!['QUERY PLAN'][0]!.Plan);
      return { nodes, text };
    } finally {
      await client.query('RESET plan_cache_mode');
      client.release();
    }
  }

  const describePlan = (nodes: Array<Record<string, unknown>>): string => nodes.map((n) => `${String(n['Node Type'])}${n['Index Name'] ? ` ${String(n['Index Name'])}` : ''}${n['Relation Name'] ? ` on ${String(n['Relation Name'])}` : ''}`).join(' > ');

  /**
   * `index`: the one the plan must read, or those it may (the planner's choice among indexes that
   * serve the order). `custom`: planned with the values, as the app's own (unnamed) statements are
   * at each use; otherwise generic, as a reused prepared statement would be.
   */
  async function expectIndexed(what: string, run: () => Promise<unknown>, index: string | string[], options: { sorted?: boolean; custom?: boolean } = {}): Promise<void> {
    const mode = options.custom ? 'custom' : 'generic';
    const { nodes, text } = await plan(run, mode);
    const shape = `${what} (${mode} plan): ${describePlan(nodes)}\n${text}`;
    const allowed = [index].flat();
    expect(nodes.filter((n) => n['Node Type'] === 'Seq Scan').map((n) => n['Relation Name']), shape).toEqual([]);
    expect(nodes.some((n) => String(n['Node Type']).includes('Index') && allowed.includes(String(n['Index Name']))), shape).toBe(true);
    // The page comes out of the index in order: nothing sorts before the limit.
    if (!options.sorted) expect(nodes.some((n) => n['Node Type'] === 'Sort' || n['Node Type'] === 'Incremental Sort'), shape).toBe(false);
  }

  const list = (project: string | undefined, filters: ModelFilters, page: PageRequest) => () => models.list({ project }, filters, page);

  it('a project key\'s list and an admin key\'s each read their own index, first page and deep page', async () => {
    await expectIndexed('project, first page', list('scale-7', {}, first), 'models_project_created_idx');
    await expectIndexed('project, deep page', list('scale-7', {}, deep), 'models_project_created_idx');
    await expectIndexed('admin, first page', list(undefined, {}, first), 'models_created_idx');
    await expectIndexed('admin, deep page', list(undefined, {}, deep), 'models_created_idx');
  });

  it('each filter reads an index that serves it, for both key kinds', async () => {
    const sha = (await h.db.query<{ s: string }>("SELECT content_sha256 AS s FROM models WHERE project = 'scale-7' LIMIT 1")).rows[0]!.s;
    // A state is a quarter of the rows here: reading the time index and skipping the other states
    // costs the planner about as much (both in order, both flat with the table's size).
    await expectIndexed('project, state', list('scale-7', { state: 'ready' }, deep), ['models_project_state_created_idx', 'models_project_created_idx']);
    await expectIndexed('admin, state', list(undefined, { state: 'failed' }, first), ['models_state_created_idx', 'models_created_idx']);
    // A content hash matches the uploads of one file: few rows, which may be sorted after the lookup.
    await expectIndexed('project, sha256', list('scale-7', { sha256: sha }, first), 'models_sha256_idx', { sorted: true });
    await expectIndexed('admin, sha256', list(undefined, { sha256: sha }, deep), 'models_sha256_idx', { sorted: true });
    // A batch's rows are few next to the table's: the planner may intersect the batch's index with
    // the project's and sort what the batch holds (flat with the table's size).
    await expectIndexed('project, batch', list('scale-3', { batch: batchId }, first), 'models_batch_idx', { sorted: true });
    await expectIndexed('admin, batch', list(undefined, { batch: batchId }, deep), 'models_batch_idx');
    // A prefix is a range of names: the matching rows are sorted by time (few, for a prefix that
    // narrows). How many rows a prefix matches, a generic plan cannot know (PostgreSQL guesses
    // 0.5 %): it may read the names' index and sort, or the time index in order and skip the
    // other names; both are index reads. The app's statements are unnamed, so PostgreSQL plans
    // them with their values at each use: with a prefix that narrows, the names' index it is.
    await expectIndexed('project, name prefix', list('scale-7', { namePrefix: 'part-01234' }, first), ['models_project_name_idx', 'models_name_idx', 'models_project_created_idx'], { sorted: true });
    await expectIndexed('admin, name prefix', list(undefined, { namePrefix: 'part-01234' }, deep), ['models_name_idx', 'models_created_idx'], { sorted: true });
    await expectIndexed('project, name prefix', list('scale-7', { namePrefix: 'part-01234' }, first), ['models_project_name_idx', 'models_name_idx'], { sorted: true, custom: true });
    // A prefix that 5 % of all names share, a few dozen of the project's: the project's names.
    await expectIndexed('project, wide name prefix', list('scale-7', { namePrefix: 'part-001' }, first), 'models_project_name_idx', { sorted: true, custom: true });
    await expectIndexed('admin, name prefix', list(undefined, { namePrefix: 'part-01234' }, first), 'models_name_idx', { sorted: true, custom: true });
    const after = new Date(Date.now() - 60_000);
    const before = new Date(Date.now() - 30_000);
    await expectIndexed('project, time range', list('scale-7', { createdAfter: after, createdBefore: before }, deep), 'models_project_created_idx');
    await expectIndexed('admin, time range', list(undefined, { createdAfter: after, createdBefore: before }, first), 'models_created_idx');
  });

  it('batches and webhook deliveries page on their indexes too', async () => {
    await expectIndexed('batches, project', () => batches.list({ project: 'scale-4' }, deep), 'batches_project_idx');
    await expectIndexed('batches, admin', () => batches.list({}, first), 'batches_created_idx');
    await expectIndexed('deliveries', () => hooks.deliveries(hookId, deep), 'webhook_deliveries_webhook_idx');
  });
});
