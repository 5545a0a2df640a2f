// Versioned schema migrations (node-pg-migrate, plain SQL files in app/migrations).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Db } from '../shared/db';
import type { Logger } from '../shared/logger';

export const MIGRATIONS_TABLE = 'pgmigrations';

/** app/migrations of the package this file belongs to (source tree, dist/ bundle or release). */
export function defaultMigrationsDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, 'app', 'migrations');
    if (fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('cannot find app/migrations; set CADFLEET_MIGRATIONS_DIR');
    dir = parent;
  }
}

/**
 * Applies pending migrations. Safe to run from several hosts at once: node-pg-migrate holds an
 * advisory lock, and `wait` makes a second runner wait for the first instead of failing.
 */
export async function migrate(db: Db, log: Logger, options: { dir?: string; direction?: 'up' | 'down'; count?: number } = {}): Promise<string[]> {
  const client = await db.pool.connect();
  try {
    const applied = await runner({
      dbClient: client,
      dir: options.dir ?? defaultMigrationsDir(),
      migrationsTable: MIGRATIONS_TABLE,
      direction: options.direction ?? 'up',
      count: options.count ?? (options.direction === 'down' ? 1 : Infinity),
      singleTransaction: true,
      advisoryLockMode: 'wait',
      checkOrder: true,
      logger: {
        debug: (msg: string) => log.debug(msg),
        info: (msg: string) => log.debug(msg),
        warn: (msg: string) => log.warn(msg),
        error: (msg: string) => log.error(msg),
      },
    });
    const names = applied.map((m) => m.name);
    log.info({ migrations: names, direction: options.direction ?? 'up' }, names.length ? 'migrations applied' : 'database schema is up to date');
    return names;
  } finally {
    client.release();
  }
}
