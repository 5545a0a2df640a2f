// `cadfleet models`: an environment's models through its LB, as a client of the v1 API sees them:
// the list pages followed with the API's `next` cursor, with the API's filters.

import https from 'node:https';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { MODEL_STATES } from '../../../app/src/shared/models';
import { LIST_TIME, MAX_PAGE, SHA256_HEX } from '../../../app/src/shared/pages';
import { positiveInt, positiveIntUpTo } from './arguments';
import { targetNamed, type ApiTarget } from '../target';

export type { ApiTarget };

/** The LB of an environment: the local fleet's (trusted with its own CA) or an AWS one's outputs. */
export function apiTarget(env: string, caFile?: string): Promise<ApiTarget> {
  return targetNamed(env).api(caFile);
}

export interface ApiAnswer {
  status: number;
  body: string;
}

export function apiGet(target: ApiTarget, pathAndQuery: string, key: string, agent: https.Agent): Promise<ApiAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(new URL(pathAndQuery, target.url), { headers: { authorization: `Bearer ${key}`, accept: 'application/json' }, agent, timeout: 60_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${target.url} sent no answer in 60 s`)));
    req.on('error', reject);
    req.end();
  });
}

export interface ListedModel {
  id: string;
  name: string;
  state: string;
  progress: number;
  createdAt: string;
  sha256?: string;
  project: string;
  error?: string;
}

export interface ModelQuery {
  state?: string;
  namePrefix?: string;
  sha256?: string;
  batch?: string;
  createdAfter?: string;
  createdBefore?: string;
}

/**
 * Every model the query selects, newest first, page after page (`next` passed back as `cursor`),
 * until `max` models (undefined: all). Each page goes to `onPage` as it comes.
 */
export async function listModels(target: ApiTarget, key: string, query: ModelQuery, max: number | undefined, onPage: (models: ListedModel[]) => void, pageSize = MAX_PAGE): Promise<number> {
  const agent = new https.Agent({ ca: target.ca, keepAlive: true, maxSockets: 1 });
  let cursor: string | undefined;
  let listed = 0;
  try {
    for (;;) {
      const limit = Math.min(pageSize, max === undefined ? pageSize : max - listed);
      const params = new URLSearchParams({ ...Object.fromEntries(Object.entries(query).filter(([, v]) => v !== undefined)), limit: String(limit), ...(cursor ? { cursor } : {}) });
      const answer = await apiGet(target, `/api/v1/models?${params}`, key, agent);
      if (answer.status !== 200) {
        let detail = answer.body.slice(0, 300);
        try {
          const error = JSON.parse(answer.body) as { code?: string; message?: string };
          detail = `${error.code ?? ''}: ${error.message ?? ''}`;
        } catch {
          /* not JSON: the body as it is */
        }
        const next = answer.status === 401 ? '; check the key (cadfleet keys list)' : answer.status === 429 || answer.status === 503 ? '; try again in a moment' : '';
        throw new Error(`GET /api/v1/models answered ${answer.status} ${detail}${next}`);
      }
      const page = JSON.parse(answer.body) as { models: ListedModel[]; next?: string };
      onPage(page.models);
      listed += page.models.length;
      if (!page.next || (max !== undefined && listed >= max)) return listed;
      cursor = page.next;
    }
  } finally {
    agent.destroy();
  }
}

const time = (value: string): string => {
  if (!LIST_TIME.test(value) || Number.isNaN(new Date(value).getTime())) {
    throw new InvalidArgumentError(`must be a time as 2026-12-07T10:00:00Z (or with an offset), or a date, got ${JSON.stringify(value)}.`);
  }
  return value;
};

const sha256 = (value: string): string => {
  if (!SHA256_HEX.test(value)) throw new InvalidArgumentError(`must be 64 lowercase hex digits (a model's sha256), got ${JSON.stringify(value)}.`);
  return value;
};

export function modelsCommand(): Command {
  const models = new Command('models').description("An environment's models, through its LB with an API key (the v1 API's list, page after page).");
  models
    .command('list')
    .description('List models newest first, following the pages; filters combine.')
    .requiredOption('--env <name>', 'environment')
    .option('--key <key>', 'an API key (default: $CADFLEET_API_KEY; an admin key lists every project)')
    .addOption(new Option('--state <state>', 'only models in this state').choices(MODEL_STATES))
    .option('--name-prefix <text>', 'names that start with this (case-sensitive)')
    .addOption(new Option('--sha256 <hex>', 'every upload of the same file (a model\'s sha256)').argParser(sha256))
    .option('--batch <id>', 'the models of a batch')
    .addOption(new Option('--created-after <time>', 'created at or after (RFC 3339, or a date)').argParser(time))
    .addOption(new Option('--created-before <time>', 'created before').argParser(time))
    .addOption(new Option('--limit <n>', 'at most this many models').argParser(positiveInt).default(100))
    .option('--all', 'every model the filters select (no --limit)')
    .addOption(new Option('--page-size <n>', `models per request, 1 to ${MAX_PAGE}`).argParser(positiveIntUpTo(MAX_PAGE)).default(MAX_PAGE))
    .option('--ca <file>', "the CA of the LB's certificate, when it is not a public one (default for local: the fleet's)")
    .option('--json', 'one JSON object per line, as the API gives each model')
    .addHelpText(
      'after',
      '\nExamples:\n  $ CADFLEET_API_KEY=cfk_... cadfleet models list --env local --state failed\n  $ cadfleet models list --env prod --key "$KEY" --name-prefix gearbox- --all --json | jq -r .id',
    )
    .action(async (opts: { env: string; key?: string; state?: string; namePrefix?: string; sha256?: string; batch?: string; createdAfter?: string; createdBefore?: string; limit: number; all?: boolean; pageSize: number; ca?: string; json?: boolean }) => {
      const key = opts.key ?? process.env.CADFLEET_API_KEY;
      if (!key) {
        process.stderr.write('cadfleet models list: no API key: pass --key or set CADFLEET_API_KEY (create one: cadfleet keys create --env <env> --project <project>)\n');
        process.exitCode = 2;
        return;
      }
      try {
        const target = await apiTarget(opts.env, opts.ca && path.resolve(opts.ca));
        const query: ModelQuery = { state: opts.state, namePrefix: opts.namePrefix, sha256: opts.sha256, batch: opts.batch, createdAfter: opts.createdAfter, createdBefore: opts.createdBefore };
        if (!opts.json) process.stdout.write(`${'id'.padEnd(36)}  ${'state'.padEnd(15)}  ${'created'.padEnd(20)}  name\n`);
        const n = await listModels(target, key, query, opts.all ? undefined : opts.limit, (page) => {
          for (const m of page) {
            process.stdout.write(
              opts.json ? `${JSON.stringify(m)}\n` : `${m.id}  ${(m.state === 'converting' ? `converting ${m.progress}%` : m.state).padEnd(15)}  ${m.createdAt.slice(0, 19).replace('T', ' ').padEnd(20)}  ${m.name}\n`,
            );
          }
        }, opts.pageSize);
        if (!opts.json) process.stderr.write(`${n} model${n === 1 ? '' : 's'}${!opts.all && n >= opts.limit ? ` (the newest ${opts.limit}; --all for every one)` : ''}\n`);
      } catch (err) {
        process.stderr.write(`cadfleet models list: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
  return models;
}
