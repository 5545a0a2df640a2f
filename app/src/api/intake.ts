// What the two upload paths (multipart and presigned) share once the bytes are stored: what
// kind of upload it is, the root file of an archive, and whether a ready model already holds
// the conversion of the same bytes.
import type { ApiContext } from './context';
import { ArchiveError, type ArchiveKind, chooseRoot, isArchiveName, listZipFromRanges } from '../shared/archive';
import { SUPPORTED_EXTENSIONS } from '../converter/formats';
import { acceptedFormat } from './file-names';
import { HttpError } from '../shared/http-errors';
import type { Model, NewModel } from '../shared/models';
import { converterVersion } from '../shared/version';

export interface UploadKind {
  /** Set for an archive; its model format is known once the root is chosen. */
  archive?: ArchiveKind;
  /** The model's format (an archive's is 'zip' until its root is chosen). */
  format: string;
}

/** A model file's format, or an archive (unless the operator's list of extensions leaves .zip out); 415 otherwise. */
export function classifyUpload(name: string, accepted: readonly string[] | undefined): UploadKind {
  if (isArchiveName(name) && (!accepted || accepted.includes('zip'))) return { archive: 'zip', format: 'zip' };
  return { format: acceptedFormat(name, accepted ?? SUPPORTED_EXTENSIONS) };
}

/** An archive's refusal as the api's error: too large is 413, the rest 400; candidates travel in the body. */
export function archiveHttpError(err: ArchiveError): HttpError {
  const code = err.code.replace(/-/g, '_');
  const status = err.code === 'archive-too-large' ? 413 : 400;
  return new HttpError(status, code, err.message, {}, err.candidates.length ? { candidates: err.candidates } : {});
}

/** An open batch of the principal's project to upload into, or the error that says why not. */
export async function checkBatch(ctx: ApiContext, value: unknown, project: string): Promise<string | undefined> {
  if (value === undefined || value === '') return undefined;
  const batch = typeof value === 'string' ? await ctx.batches.get(value, { project }) : undefined;
  if (!batch) throw new HttpError(404, 'batch_not_found', `no batch ${JSON.stringify(value)} in this project`);
  if (batch.state !== 'open') throw new HttpError(409, 'batch_not_open', `the batch is ${batch.state}; uploads join a batch before it starts: create a new one`);
  return batch.id;
}

/** The string field `name` of a multipart form (or the query string when the form has none). */
export function formField(fields: Record<string, unknown>, query: unknown, name: string): string | undefined {
  const field = fields[name] as { type?: string; value?: unknown } | Array<unknown> | undefined;
  if (field && !Array.isArray(field) && field.type === 'field' && typeof field.value === 'string') return field.value;
  const fromQuery = (query as Record<string, unknown> | undefined)?.[name];
  return typeof fromQuery === 'string' ? fromQuery : undefined;
}

export function checkReuse(value: unknown): boolean {
  if (value === undefined || value === '' || value === true || value === 'true' || value === '1') return true;
  if (value === false || value === 'false' || value === '0') return false;
  throw new HttpError(400, 'invalid_reuse', `reuse must be true or false, got ${JSON.stringify(value)}`);
}

export function checkRoot(value: unknown): string | undefined {
  if (value === undefined || value === '') return undefined;
  // eslint-disable-next-line no-control-regex
  if (typeof value !== 'string' || value.length > 1024 || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new HttpError(400, 'invalid_root', 'root must be the path of a file inside the archive, at most 1024 characters, such as "models/part.obj"');
  }
  return value;
}

/**
 * Reads a stored archive's directory (range reads: its central directory only) and picks the
 * root file: the one named, or the only model file. Returns the root and its format.
 */
export async function inspectArchive(ctx: ApiContext, key: string, size: number, root: string | undefined): Promise<{ root: string; format: string }> {
  const accepted = ctx.config.uploads.acceptedExtensions?.filter((e) => e !== 'zip');
  try {
    const listing = await listZipFromRanges(size, (start, end) => ctx.storage.getRange(ctx.storage.uploadsBucket, key, start, end), ctx.config.archives);
    const chosen = chooseRoot(listing, root, accepted);
    return { root: chosen, format: acceptedFormat(chosen.slice(chosen.lastIndexOf('/') + 1), accepted ?? SUPPORTED_EXTENSIONS) };
  } catch (err) {
    if (err instanceof ArchiveError) throw archiveHttpError(err);
    throw err;
  }
}

/**
 * Creates the model row and its job. If the job cannot be queued the row goes (and the stored
 * file, unless the client uploaded it itself): the client gets a 503 and tries again, and
 * nothing half-made stays behind.
 */
export async function admitModel(
  ctx: ApiContext,
  model: Parameters<ApiContext['models']['create']>[0],
  options: { keepInputOnFailure?: boolean } = {},
): Promise<Model> {
  const created = await ctx.models.create(model);
  try {
    // A model of an open batch waits for the batch's start. If the batch started between the
    // caller's check and this insert, its start may have missed this model: queue it here.
    if (created.batchId && (await ctx.batches.get(created.batchId, {}))?.state === 'open') return created;
    await ctx.queue.enqueue(created);
  } catch (err) {
    await ctx.models.remove(created.id, {}).catch(() => undefined);
    if (!options.keepInputOnFailure) await ctx.storage.deleteKeys(ctx.storage.uploadsBucket, [created.inputKey]).catch(() => undefined);
    throw err;
  }
  return created;
}

/**
 * The model for stored bytes: ready at once when a ready model of the same project holds the
 * conversion of the same bytes, root and options by the same converter (and the client did not
 * say reuse=false); otherwise queued for conversion.
 */
export async function admitOrReuse(ctx: ApiContext, model: NewModel, options: { keepInputOnFailure?: boolean } = {}): Promise<Model> {
  if (model.reuse !== false && model.contentSha256) {
    const source = await ctx.models.findReusable({
      project: model.project,
      contentSha256: model.contentSha256,
      format: model.format,
      archiveRoot: model.archiveRoot ?? null,
      quality: model.quality,
      converterVersion: converterVersion(ctx.config.worker.converterCommand),
    });
    const reused = source && (await ctx.models.createReused(model, source.id));
    if (reused) {
      ctx.metrics.reused.inc();
      return reused;
    }
  }
  return admitModel(ctx, model, options);
}
