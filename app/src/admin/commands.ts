// Operator commands that talk to PostgreSQL directly: schema migrations and API keys.
//   main.ts migrate [--down]
//   main.ts keys create --project P [--admin] [--name N]   (prints the key alone on the last line)
//   main.ts keys list [--project P] [--all] [--json]
//   main.ts keys revoke <id>
import { Command, Option } from 'commander';
import { loadDatabaseConfig } from '../shared/config';
import { type Db, createDb } from '../shared/db';
import { type ApiKeyInfo, createKeyService } from '../shared/keys';
import { createLogger } from '../shared/logger';
import { migrate } from './migrate';

type Out = { log(line: string): void; error(line: string): void };

async function withDb<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const { database, logLevel } = loadDatabaseConfig();
  // Logs go to stderr so that stdout carries only the command's answer.
  const log = createLogger({ level: logLevel === 'info' ? 'warn' : logLevel, role: 'admin', fd: 2 });
  const db = await createDb(database, log, { applicationName: 'cadfleet-admin', max: 2 });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

const row = (k: ApiKeyInfo): string =>
  [k.id, k.project, k.admin ? 'admin' : 'project', k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : 'active', k.name ?? '', k.createdAt.toISOString()].join('\t');

export function adminCommands(out: Out = console): Command[] {
  const migrateCmd = new Command('migrate')
    .description('apply pending database migrations (or roll back the last one with --down)')
    .option('--down', 'roll back the most recent migration')
    .action(async (opts: { down?: boolean }) => {
      await withDb(async (db) => {
        const { logLevel } = loadDatabaseConfig();
        const names = await migrate(db, createLogger({ level: logLevel, role: 'migrate', fd: 2 }), { direction: opts.down ? 'down' : 'up' });
        out.log(names.length ? `${opts.down ? 'rolled back' : 'applied'}: ${names.join(', ')}` : 'the database schema is up to date');
      });
    });

  const keys = new Command('keys').description('create, list and revoke API keys');
  keys
    .command('create')
    .description('create an API key for a project; the key is printed once, alone on the last line')
    .requiredOption('--project <project>', 'the project (tenant) the key belongs to')
    .option('--admin', 'an admin key: manages keys, reads /status, sees every project')
    .option('--name <name>', 'a label for the key')
    .action(async (opts: { project: string; admin?: boolean; name?: string }) => {
      await withDb(async (db) => {
        const { key, info } = await createKeyService(db).create({ project: opts.project, admin: opts.admin, name: opts.name });
        out.error(`created ${info.admin ? 'admin ' : ''}key ${info.id} for project ${info.project}; store it now, it cannot be shown again`);
        out.log(key);
      });
    });
  keys
    .command('list')
    .description('list API keys (never the keys themselves)')
    .option('--project <project>', 'only this project')
    .option('--all', 'include revoked keys')
    .addOption(new Option('--json', 'JSON output'))
    .action(async (opts: { project?: string; all?: boolean; json?: boolean }) => {
      await withDb(async (db) => {
        const list = await createKeyService(db).list({ project: opts.project, includeRevoked: opts.all });
        if (opts.json) out.log(JSON.stringify(list, null, 2));
        else {
          out.log(['id', 'project', 'kind', 'state', 'name', 'created'].join('\t'));
          for (const k of list) out.log(row(k));
        }
      });
    });
  keys
    .command('revoke')
    .description('revoke an API key by id (takes effect on the next request)')
    .argument('<id>', 'the key id (the part after cfk_), as shown by keys list')
    .action(async (id: string) => {
      await withDb(async (db) => {
        const revoked = await createKeyService(db).revoke(id.replace(/^cfk_([A-Za-z0-9]{12}).*$/, '$1'));
        if (!revoked) {
          out.error(`no key with id ${id}`);
          process.exitCode = 1;
          return;
        }
        out.log(`revoked ${revoked.id} (project ${revoked.project})`);
      });
    });
  return [migrateCmd, keys];
}
