// Presigned uploads: the client PUTs the file straight to S3, then asks the api to start the
// conversion. The upload id becomes the model id.
import type { Db } from '../shared/db';
import { isModelId, type Scope } from '../shared/models';

export interface PendingUpload {
  id: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  size: number;
  objectKey: string;
  createdByKey: string | null;
  createdAt: Date;
  expiresAt: Date;
  completedAt: Date | null;
  archive: string | null;
  archiveRoot: string | null;
  reuse: boolean;
  batchId: string | null;
}

interface Row {
  id: string;
  project: string;
  name: string;
  format: string;
  quality: string;
  size: string;
  object_key: string;
  created_by_key: string | null;
  created_at: Date;
  expires_at: Date;
  completed_at: Date | null;
  archive: string | null;
  archive_root: string | null;
  reuse: boolean;
  batch_id: string | null;
}

const fromRow = (r: Row): PendingUpload => ({
  id: r.id,
  project: r.project,
  name: r.name,
  format: r.format,
  quality: r.quality,
  size: Number(r.size),
  objectKey: r.object_key,
  createdByKey: r.created_by_key,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  completedAt: r.completed_at,
  archive: r.archive,
  archiveRoot: r.archive_root,
  reuse: r.reuse,
  batchId: r.batch_id,
});

export interface UploadRepository {
  create(u: Omit<PendingUpload, 'createdAt' | 'completedAt'>): Promise<PendingUpload>;
  get(id: string, scope: Scope): Promise<PendingUpload | undefined>;
  markCompleted(id: string): Promise<boolean>;
}

export function createUploadRepository(db: Db): UploadRepository {
  return {
    async create(u) {
      const { rows } = await db.query<Row>(
        `INSERT INTO uploads (id, project, name, format, quality, size, object_key, created_by_key, expires_at, archive, archive_root, reuse, batch_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *`,
        [u.id, u.project, u.name, u.format, u.quality, u.size, u.objectKey, u.createdByKey, u.expiresAt, u.archive, u.archiveRoot, u.reuse, u.batchId],
      );
      return fromRow(rows[0]!);
    },
    async get(id, scope) {
      if (!isModelId(id)) return undefined;
      const { rows } = await db.query<Row>('SELECT * FROM uploads WHERE id = $1 AND ($2::text IS NULL OR project = $2)', [id, scope.project ?? null]);
      return rows[0] ? fromRow(rows[0]) : undefined;
    },
    async markCompleted(id) {
      const { rowCount } = await db.query('UPDATE uploads SET completed_at = now() WHERE id = $1 AND completed_at IS NULL', [id]);
      return (rowCount ?? 0) > 0;
    },
  };
}
