// A model as the API shows it (GET /api/v1/models/:id), also the payload of events and webhooks.
import type { Model, ModelState } from './models';
import type { ModelFile } from './storage';

/** Files a client may download; result.json stays internal. */
export const DOWNLOADABLE: readonly ModelFile[] = ['model.glb', 'manifest.json'];

export interface ModelView {
  id: string;
  name: string;
  state: ModelState;
  progress: number;
  error?: string;
  errorCode?: string;
  stats?: Model['stats'];
  project: string;
  format: string;
  quality: string;
  size: number;
  createdAt: string;
  updatedAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** The worker host that converted it. */
  workerHost?: string;
  files?: Record<string, string>;
  /** 'zip' for an archive upload; `format` is its root file's. */
  archive?: string;
  /** The file inside the archive that was converted. */
  root?: string;
  /** SHA-256 (hex) of the uploaded bytes. */
  sha256?: string;
  /** The model whose conversion this one reuses (same bytes, root and options); no conversion ran for it. */
  reusedFrom?: string;
  /** The batch the model was uploaded into. */
  batch?: string;
}

export function modelView(m: Model): ModelView {
  return {
    id: m.id,
    name: m.name,
    state: m.state,
    progress: m.progress,
    ...(m.error ? { error: m.error, errorCode: m.errorCode ?? undefined } : {}),
    ...(m.stats ? { stats: m.stats } : {}),
    project: m.project,
    format: m.format,
    quality: m.quality,
    size: m.inputBytes,
    createdAt: m.createdAt.toISOString(),
    updatedAt: m.updatedAt.toISOString(),
    ...(m.startedAt ? { startedAt: m.startedAt.toISOString() } : {}),
    ...(m.finishedAt ? { finishedAt: m.finishedAt.toISOString() } : {}),
    ...(m.workerHost ? { workerHost: m.workerHost } : {}),
    ...(m.archive ? { archive: m.archive, root: m.archiveRoot ?? undefined } : {}),
    ...(m.contentSha256 ? { sha256: m.contentSha256 } : {}),
    ...(m.reusedFrom ? { reusedFrom: m.reusedFrom } : {}),
    ...(m.batchId ? { batch: m.batchId } : {}),
    ...(m.state === 'ready' ? { files: Object.fromEntries(DOWNLOADABLE.map((f) => [f, `/api/v1/models/${m.id}/files/${f}`])) } : {}),
  };
}
