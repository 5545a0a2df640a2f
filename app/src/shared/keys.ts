// API keys: `cfk_<id>_<secret>`, 256 bits of secret. The database keeps the id and a SHA-256
// of the whole key; a lookup by id and a constant-time comparison of hashes verify a key.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './db';

export const PROJECT_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const KEY_PATTERN = /^cfk_([A-Za-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export interface ApiKeyInfo {
  id: string;
  project: string;
  name: string | null;
  admin: boolean;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

export interface Principal {
  keyId: string;
  project: string;
  admin: boolean;
}

export type VerifyResult = { ok: true; principal: Principal } | { ok: false; reason: 'malformed' | 'unknown' | 'revoked' };

export interface KeyService {
  create(input: { project: string; admin?: boolean; name?: string }): Promise<{ key: string; info: ApiKeyInfo }>;
  list(filter?: { project?: string; includeRevoked?: boolean }): Promise<ApiKeyInfo[]>;
  revoke(id: string): Promise<ApiKeyInfo | undefined>;
  verify(key: string): Promise<VerifyResult>;
}

const hash = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function keyId(): string {
  // 12 characters from 62: rejection-free is fine here since the id is not the secret.
  return Array.from(randomBytes(12), (b) => ALNUM[b % ALNUM.length]).join('');
}

interface KeyRow {
  id: string;
  project: string;
  name: string | null;
  admin: boolean;
  secret_hash: Buffer;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}
const info = (r: KeyRow): ApiKeyInfo => ({
  id: r.id,
  project: r.project,
  name: r.name,
  admin: r.admin,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at,
  revokedAt: r.revoked_at,
});

export function createKeyService(db: Db): KeyService {
  // last_used_at is written at most once a minute per key, not on every request.
  const touched = new Map<string, number>();
  return {
    async create({ project, admin = false, name }) {
      if (!PROJECT_PATTERN.test(project)) {
        throw new Error(`the project must be lowercase letters, digits, dot, dash or underscore (at most 63), got ${JSON.stringify(project)}`);
      }
      const id = keyId();
      const key = `cfk_${id}_${randomBytes(32).toString('base64url')}`;
      const { rows } = await db.query<KeyRow>(
        'INSERT INTO api_keys (id, project, name, admin, secret_hash) VALUES ($1, $2, $3, $4, $5) RETURNING *',
        [id, project, name ?? null, admin, hash(key)],
      );
      return { key, info: info(rows[0]!) };
    },
    async list(filter = {}) {
      const { rows } = await db.query<KeyRow>(
        `SELECT * FROM api_keys WHERE ($1::text IS NULL OR project = $1) AND ($2 OR revoked_at IS NULL) ORDER BY created_at`,
        [filter.project ?? null, filter.includeRevoked ?? false],
      );
      return rows.map(info);
    },
    async revoke(id) {
      const { rows } = await db.query<KeyRow>('UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *', [id]);
      return rows[0] ? info(rows[0]) : undefined;
    },
    async verify(key) {
      const match = KEY_PATTERN.exec(key);
      if (!match) return { ok: false, reason: 'malformed' };
      const { rows } = await db.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [match[1]]);
      const row = rows[0];
      // Compare against a dummy hash when the id is unknown so both paths do the same work.
      const expected = row?.secret_hash ?? Buffer.alloc(32);
      const equal = timingSafeEqual(hash(key), expected);
      if (!row || !equal) return { ok: false, reason: 'unknown' };
      if (row.revoked_at) return { ok: false, reason: 'revoked' };
      const now = Date.now();
      if (now - (touched.get(row.id) ?? 0) > 60_000) {
        touched.set(row.id, now);
        void db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [row.id]).catch(() => undefined);
      }
      return { ok: true, principal: { keyId: row.id, project: row.project, admin: row.admin } };
    },
  };
}
