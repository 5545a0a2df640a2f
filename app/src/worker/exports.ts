// Export jobs, run by the worker hosts: the processor of the `exports` queue (the rows and the
// queue, as the api asks for them, are shared/exports.ts).
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type Job, UnrecoverableError, Worker } from 'bullmq';
import { ArchiveError, chooseRoot, extractZip } from '../shared/archive';
import type { Config } from '../shared/config';
import { EXPORT_QUEUE, type ExportStore, exportKey } from '../shared/exports';
import type { Logger } from '../shared/logger';
import type { Model } from '../shared/models';
import { bullPrefix } from '../shared/queue';
import type { Redis } from '../shared/redis';
import { type Storage, objectKeys } from '../shared/storage';
import { MESH_TARGETS, TARGET_FILES, type Target, runExport } from '../converter/export/index';

/** Failures another try cannot fix. */
const PERMANENT = new Set(['unsupported', 'timeout', 'memory', 'corrupt']);

export interface ExportDeps {
  config: Config;
  log: Logger;
  storage: Storage;
  exports: ExportStore;
  getModel(id: string): Promise<Model | undefined>;
  host: string;
}

/** The processor: fetch the source, run the export under its limits, store the file, record it. */
export function createExportProcessor(deps: ExportDeps): (job: Job<{ modelId: string; format: Target }>) => Promise<string> {
  const { config, storage, exports } = deps;
  return async (job) => {
    const { modelId, format } = job.data;
    const log = deps.log.child({ model: modelId, export: format, attempt: job.attemptsStarted });
    const model = await deps.getModel(modelId);
    if (!model || model.state !== 'ready' || !model.outputPrefix) return 'skipped';
    if (!(await exports.start(modelId, format, deps.host))) return 'skipped';
    const last = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    await fsp.mkdir(config.worker.workDir, { recursive: true });
    const dir = await fsp.mkdtemp(path.join(config.worker.workDir, `export-${modelId}-${format}-`));
    try {
      // Mesh targets come from the stored viewing GLB; B-rep ones from the upload itself.
      let input: string;
      if (MESH_TARGETS.includes(format)) {
        const glb = await storage.get(storage.modelsBucket, objectKeys.output(model.outputPrefix, 'model.glb'));
        if (!glb) throw new UnrecoverableError('the model\'s stored GLB is missing');
        input = path.join(dir, 'model.glb');
        await pipeline(glb.body, fs.createWriteStream(input));
      } else {
        const upload = await storage.get(storage.uploadsBucket, model.inputKey);
        if (!upload) throw new UnrecoverableError('the uploaded file is missing from storage; upload it again');
        const downloaded = path.join(dir, model.archive ? 'upload.zip' : `input.${model.format}`);
        await pipeline(upload.body, fs.createWriteStream(downloaded));
        input = downloaded;
        if (model.archive) {
          const root = path.join(dir, 'in');
          await fsp.mkdir(root);
          const listing = await extractZip(downloaded, root, config.archives).catch((err: unknown) => {
            throw err instanceof ArchiveError ? new UnrecoverableError(err.message) : err;
          });
          input = path.join(root, ...chooseRoot(listing, model.archiveRoot ?? undefined).split('/'));
        }
      }
      const result = await runExport(
        { target: format, input, sourceFormat: model.format, outputDir: path.join(dir, 'out'), cacheDir: config.worker.workDir },
        { timeoutMs: config.exports.timeoutMs, maxMemoryMb: config.worker.maxMemoryMb },
      );
      if (!result.ok) {
        const permanent = PERMANENT.has(result.code ?? '');
        await exports.finish(modelId, format, { state: permanent || last ? 'failed' : 'queued', error: result.error, code: result.code });
        log.info({ code: result.code, error: result.error }, 'export failed');
        if (permanent) throw new UnrecoverableError(result.error ?? 'the export failed');
        throw new Error(result.error ?? 'the export failed');
      }
      const key = exportKey(model, format);
      await storage.putStream(storage.modelsBucket, key, fs.createReadStream(path.join(dir, 'out', result.file!)), TARGET_FILES[format].contentType);
      await exports.finish(modelId, format, { state: 'ready', objectKey: key, bytes: result.bytes, triangles: result.triangles, seconds: result.seconds });
      log.info({ bytes: result.bytes, seconds: result.seconds }, 'export ready');
      return 'ready';
    } catch (err) {
      if (err instanceof UnrecoverableError) {
        const row = await exports.get(modelId, format);
        if (row?.state === 'converting') await exports.finish(modelId, format, { state: 'failed', error: err.message, code: 'unsupported' });
        throw err;
      }
      const row = await exports.get(modelId, format);
      if (row?.state === 'converting') await exports.finish(modelId, format, { state: last ? 'failed' : 'queued', error: (err as Error).message, code: 'internal' });
      throw err;
    } finally {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  };
}

export function startExportWorker(deps: ExportDeps & { connection: Redis }): { close(): Promise<void> } {
  const worker = new Worker(EXPORT_QUEUE, createExportProcessor(deps), {
    connection: deps.connection,
    prefix: bullPrefix(deps.config.redis),
    concurrency: deps.config.worker.concurrency,
    lockDuration: deps.config.worker.lockMs,
    stalledInterval: deps.config.worker.stalledIntervalMs,
    name: `${deps.host}-exports`,
  });
  worker.on('error', (err) => deps.log.warn({ err }, 'export queue connection error'));
  return { close: () => worker.close() };
}
