// A transaction whose connection dies (a database restart, a failover) fails that transaction and
// nothing else: before, the checked-out client's 'error' event had no listener and ended the
// process (a worker restarted during the fleet suite's PostgreSQL restart).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDb, type Db } from '../../app/src/shared/db';
import { type PostgresInstance, startPostgres } from '../../scripts/local-services';

let postgres: PostgresInstance;
let db: Db;

beforeAll(async () => {
  postgres = await startPostgres({ dir: path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-dbtx-')), 'pg') });
  db = await createDb({ url: postgres.url, sslMode: 'disable', poolSize: 4 } as never, pino({ level: 'silent' }));
}, 60_000);

afterAll(async () => {
  await db?.close();
  await postgres?.stop();
});

describe('a transaction whose connection dies', () => {
  it('rejects, the process lives on, and the pool serves the next query on a new connection', async () => {
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown): void => void uncaught.push(err);
    process.on('uncaughtException', onUncaught);
    try {
      const running = db.tx(async (client) => {
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        // Another session ends this one, as a database shutdown does.
        await db.query('SELECT pg_terminate_backend($1)', [rows[0]!.pid]);
        await client.query('SELECT pg_sleep(5)');
      });
      // The words depend on which comes first, the socket's end or the next query:
      // "terminating connection", "Connection terminated", "... not queryable".
      await expect(running).rejects.toThrow(/terminat|closed|not queryable|ECONNRESET|EPIPE|connection/i);
      await new Promise((r) => setTimeout(r, 200));
      expect(uncaught).toEqual([]);
      const after = await db.tx(async (client) => (await client.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one);
      expect(after).toBe(1);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
