// api benchmark, lists at scale: the latency of GET /api/v1/models through the LB (HTTPS,
// keep-alive) at 10^4, 10^5 and 10^6 models in the fleet's PostgreSQL, for a project's key and
// an admin key, the first page and a page deep in the list (a cursor at 90 % of it, the token the
// api gives there). Each row is compared with the same request at 10^4 models, measured in the
// same run: the goal is flat (at most 2x at 10^6).
//
// The models are written straight into the fleet's database (one INSERT ... SELECT per step, the
// table's triggers off inside its transaction, so no events), spread over 10 projects
// `bench-scale-<n>`, and deleted at the end.
//
// Run alone: sudo node --import tsx bench/lists.ts   (BENCH_QUICK=1: 10^3, 10^4, 10^5 models, fewer requests)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { bindingOf, encodeCursor } from '../app/src/shared/pages';
import { deleteSeeded, seedModels } from '../test/helpers/seed-models';
import { CA, QUICK, STATE, type Agents, type FleetInfo, call, cadfleet, closeAgents, ensureFleet, fleetAgents, param, say } from './fleet';
import { type Row, type Section, median, spread, percentile } from './report';

const log = say('api lists');
const PREFIX = 'bench-scale';
const PROJECTS = 10;
const PAGE = 100;
/** Requests of each row before it is measured: the first row of a run, measured after 10, was twice as slow as the same request later. */
const WARMUP = 50;

interface Measured {
  size: number;
  key: 'project' | 'admin';
  page: 'first' | 'deep';
  latencies: number[];
}


function database(fleet: FleetInfo): pg.Pool {
  const secrets = JSON.parse(fs.readFileSync(path.join(STATE, 'secrets.json'), 'utf8')) as { postgresPassword: string };
  return new pg.Pool({
    host: fleet.hosts['data-1'],
    database: 'cadfleet',
    user: 'cadfleet',
    password: secrets.postgresPassword,
    ssl: { ca: fs.readFileSync(CA) },
    max: 2,
  });
}

/** A key of the first scale project, kept beside the bench's admin key while it works. */
async function projectKey(fleet: FleetInfo, agents: Agents): Promise<string> {
  const file = path.join(STATE, 'bench-scale-key');
  const valid = async (k: string): Promise<boolean> => (await call(`https://${fleet.lb}/api/v1/models?limit=1`, { agents, headers: { authorization: `Bearer ${k}` } })).status === 200;
  const kept = fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim() : '';
  if (kept && (await valid(kept))) return kept;
  const key = (await cadfleet(['keys', 'create', '--env', 'local', '--project', `${PREFIX}-0`, '--name', 'bench-scale'])).stdout.trim().split('\n').pop() ?? '';
  if (!(await valid(key))) throw new Error('the new bench-scale API key is refused by the api');
  fs.writeFileSync(file, `${key}\n`, { mode: 0o600 });
  return key;
}

/** The token the api gives for the page after the row at `depth` of the list (0: the newest). */
async function deepCursor(db: pg.Pool, project: string | undefined, depth: number): Promise<string> {
  const { rows } = await db.query<{ at: string; id: string }>(
    `SELECT created_at::text AS at, id FROM models ${project ? 'WHERE project = $2' : 'WHERE $2::text IS NULL'} ORDER BY created_at DESC, id DESC OFFSET $1 LIMIT 1`,
    [depth, project ?? null],
  );
  if (!rows[0]) throw new Error(`no model at depth ${depth}`);
  return encodeCursor(rows[0], bindingOf('models', project, {}));
}

/** 90 % down a list of `n`, with a whole page after it. */
const deepAt = (n: number): number => Math.min(Math.floor(n * 0.9), n - PAGE - 1);

export async function benchLists(given?: FleetInfo): Promise<Section> {
  const requests = param('LISTS_REQUESTS', 200, 40);
  const sizes = QUICK ? [1_000, 10_000, 100_000] : [10_000, 100_000, 1_000_000];
  const fleet = given ?? (await ensureFleet(log));
  const agents = fleetAgents(true);
  const db = database(fleet);
  const measured: Measured[] = [];
  const seedSeconds: number[] = [];
  try {
    const keys = { project: await projectKey(fleet, agents), admin: fleet.key };
    await deleteSeeded(db, `${PREFIX}-%`);
    const others = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM models')).rows[0]!.n);
    const newest = new Date(Date.now() - 1000);
    let seeded = 0;
    for (const size of sizes) {
      const t0 = performance.now();
      // Each step adds older rows after the ones there: the newest pages stay the same models.
      await seedModels(db, { count: size - seeded, from: seeded, project: PREFIX, projects: PROJECTS, newest, sameTime: 2, triggersOff: 'table' });
      await db.query('ANALYZE models');
      seeded = size;
      seedSeconds.push((performance.now() - t0) / 1000);
      log(`${size.toLocaleString('en-US')} models seeded (${others} others) in ${seedSeconds.at(-1)!.toFixed(1)} s`);
      const paths = {
        project: { first: `/api/v1/models?limit=${PAGE}`, deep: `/api/v1/models?limit=${PAGE}&cursor=${await deepCursor(db, `${PREFIX}-0`, deepAt(size / PROJECTS))}` },
        admin: { first: `/api/v1/models?limit=${PAGE}`, deep: `/api/v1/models?limit=${PAGE}&cursor=${await deepCursor(db, undefined, deepAt(size))}` },
      };
      for (const key of ['project', 'admin'] as const) {
        for (const page of ['first', 'deep'] as const) {
          const headers = { authorization: `Bearer ${keys[key]}` };
          const url = `https://${fleet.lb}${paths[key][page]}`;
          const latencies: number[] = [];
          // Warm-up (connections, the statement's plan, the pages in PostgreSQL's cache), then measured.
          for (let i = 0; i < requests + WARMUP; i++) {
            const t = performance.now();
            const r = await call(url, { agents, headers });
            if (r.status !== 200) throw new Error(`GET ${paths[key][page].slice(0, 60)}... with the ${key} key answered ${r.status}: ${r.body.slice(0, 300)}`);
            const items = (JSON.parse(r.body) as { models: unknown[] }).models.length;
            if (items !== PAGE) throw new Error(`the ${page} page of the ${key} key held ${items} models, not ${PAGE}`);
            if (i >= WARMUP) latencies.push(performance.now() - t);
          }
          measured.push({ size, key, page, latencies });
          const sorted = [...latencies].sort((a, b) => a - b);
          log(`${size.toLocaleString('en-US')} models, ${key} key, ${page} page: median ${median(latencies).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms`);
        }
      }
    }
  } finally {
    const t0 = performance.now();
    await deleteSeeded(db, `${PREFIX}-%`).catch((err: unknown) => log(`could not delete the seeded models: ${(err as Error).message}`));
    log(`seeded models deleted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    await db.end();
    closeAgents(agents);
  }

  const label = (m: Pick<Measured, 'size' | 'key' | 'page'>): string => `list latency, ${m.key} key, ${m.page} page, ${m.size.toLocaleString('en-US')} models`;
  const rows: Row[] = [];
  for (const key of ['project', 'admin'] as const) {
    for (const page of ['first', 'deep'] as const) {
      const base = measured.find((m) => m.key === key && m.page === page && m.size === sizes[0])!;
      for (const m of measured.filter((x) => x.key === key && x.page === page)) {
        const sorted = [...m.latencies].sort((a, b) => a - b);
        const ratio = median(m.latencies) / median(base.latencies);
        const last = m.size === sizes.at(-1);
        rows.push({
          name: label(m),
          median: median(m.latencies),
          unit: 'ms',
          spread: spread(m.latencies, 1),
          ...(m === base ? {} : { baseline: label(base), ratio }),
          note: `p99 ${percentile(sorted, 99).toFixed(1)} ms${key === 'project' ? `; the project holds ${(m.size / PROJECTS).toLocaleString('en-US')}` : ''}${last ? `; goal: within 2x of ${sizes[0]!.toLocaleString('en-US')} models, ${ratio <= 2 ? 'met' : 'missed'}` : ''}`,
        });
      }
    }
  }
  return {
    title: `api lists: GET /api/v1/models?limit=${PAGE} through the LB at ${sizes.map((s) => s.toLocaleString('en-US')).join(', ')} models (${requests} requests each, one at a time, HTTPS keep-alive, median)`,
    rows,
    notes: [
      `The models are spread over ${PROJECTS} projects; the project key lists one of them (a tenth of the rows), the admin key every project. The deep page starts at a cursor 90 % down the list (the token the api hands out there). Each request is answered with ${PAGE} models; the first ${WARMUP} of each row are a warm-up.`,
      `Seeding (one INSERT ... SELECT per step, the table's triggers off, then ANALYZE): ${seedSeconds.map((s, i) => `${s.toFixed(0)} s to reach ${sizes[i]!.toLocaleString('en-US')}`).join(', ')}. The models are deleted at the end.`,
      'Every list statement reads an index in its order (keyset pages on created_at, id; test/service/lists.test.ts checks the generic plans), so a page costs the same few index entries whatever the table holds; what grows with the table is the index depth (one level per about 300x) and how much of it PostgreSQL keeps cached.',
    ],
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { table, writeReport } = await import('./report');
  const section = await benchLists();
  if (QUICK) section.title += ' — quick run (BENCH_QUICK=1): for checking the benchmark, not for comparison';
  process.stdout.write(`${table(section)}\n`);
  writeReport('docs/benchmarks.md', 'api-2', section);
  process.exit(0);
}
