// Database credentials from Secrets Manager, re-read when PostgreSQL refuses them (RDS rotates
// managed passwords). The SDK talks to a small local endpoint that speaks GetSecretValue.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadDatabaseConfig } from '../../app/src/shared/config';
import { createCredentialCache } from '../../app/src/shared/db-credentials';
import { createDb } from '../../app/src/shared/db';
import { type PostgresInstance, S3RVER_CREDENTIALS, startPostgres } from '../../scripts/local-services';

let dir: string;
let postgres: PostgresInstance;
let secretsManager: http.Server;
let secret = { username: 'cadfleet', password: '' };
const requests: Array<{ target: string; secretId: string }> = [];

beforeAll(async () => {
  Object.assign(process.env, S3RVER_CREDENTIALS);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-secrets-'));
  postgres = await startPostgres({ dir: path.join(dir, 'pg') });
  secret = { username: postgres.user, password: postgres.password };
  // The AWS JSON 1.1 protocol: POST / with X-Amz-Target naming the operation.
  secretsManager = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const target = String(req.headers['x-amz-target']);
      const secretId = (JSON.parse(body) as { SecretId: string }).SecretId;
      requests.push({ target, secretId });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ ARN: secretId, Name: 'cadfleet-db', SecretString: JSON.stringify(secret), VersionId: String(requests.length) }));
    });
  });
  await new Promise<void>((resolve) => secretsManager.listen(0, '127.0.0.1', resolve));
});

afterAll(async () => {
  secretsManager?.close();
  await postgres?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('database credentials from Secrets Manager', () => {
  it('reads the password from the secret and reads it again after a rotation', async () => {
    const arn = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:cadfleet-db-AbCdEf';
    const { port } = secretsManager.address() as AddressInfo;
    // The URL carries no password: it comes from the secret.
    const { database } = loadDatabaseConfig({
      CADFLEET_DATABASE_URL: `postgres://127.0.0.1:${postgres.port}/${postgres.database}?sslmode=disable`,
      CADFLEET_DATABASE_SECRET_ARN: arn,
      CADFLEET_SECRETS_ENDPOINT: `http://127.0.0.1:${port}`,
    });
    const db = await createDb(database, pino({ level: 'silent' }), { max: 1 });
    try {
      expect((await db.query<{ user: string }>('SELECT current_user AS user')).rows[0]!.user).toBe('cadfleet');
      expect(requests).toEqual([{ target: 'secretsmanager.GetSecretValue', secretId: arn }]);

      // Rotate: new password in PostgreSQL and in the secret; drop the open connection.
      const admin = new pg.Client({ connectionString: postgres.adminUrl });
      await admin.connect();
      const newPassword = `rotated-${Date.now()}`;
      await admin.query(`ALTER ROLE cadfleet PASSWORD '${newPassword}'`);
      secret = { ...secret, password: newPassword };
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'cadfleet'`);
      await admin.end();
      // The server's notice reaches the idle pooled connection a moment later; until the pool has
      // dropped it, a query could still be sent on it and meet the termination (57P01), which is
      // not what this test is about.
      for (const t0 = Date.now(); db.pool.totalCount > 0; ) {
        if (Date.now() - t0 > 5000) throw new Error('the pool kept its terminated connection for 5 s');
        await new Promise((r) => setTimeout(r, 20));
      }

      // The next query needs a new connection: the cached password fails, the secret is read again.
      expect((await db.query<{ one: number }>('SELECT 1 AS one')).rows[0]!.one).toBe(1);
      expect(db.credentials?.reads).toBe(2);
      expect(requests).toHaveLength(2);
    } finally {
      await db.close();
    }
  });

  it('re-reads at most once per interval after repeated failures', async () => {
    let reads = 0;
    const cache = createCredentialCache({ read: async () => ({ password: `p${++reads}` }) }, { minRefreshMs: 60_000 });
    expect((await cache.get()).password).toBe('p1');
    cache.invalidate();
    expect((await cache.get()).password).toBe('p2');
    cache.invalidate();
    expect((await cache.get()).password).toBe('p2');
    expect(cache.reads).toBe(2);
  });
});
