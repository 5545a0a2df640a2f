// Where a streamer gets its stream packs: memory (shared by every session of a model), then
// the local disk cache, then S3 (model.glb + manifest.json, cut into a pack and written to
// disk). The disk cache has a size cap; the least recently used models leave first.
//
//   <dir>/<sha256(format:chunkTriangles:prefix)[0:40]>/index.json   PackIndex
//   <dir>/<...>/pack.bin                                              the frames
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Manifest } from '../converter/manifest';
import type { Logger } from '../shared/logger';
import { type Storage, objectKeys } from '../shared/storage';
import { PACK_FORMAT, type Pack, type PackIndex, buildPack } from './pack';

export class ModelUnavailableError extends Error {
  override name = 'ModelUnavailableError';
}

export interface PackLease {
  readonly pack: Pack;
  /** Where it came from this time: memory, disk or s3. */
  readonly source: 'memory' | 'disk' | 's3';
  release(): void;
}

export interface ModelStore {
  open(prefix: string): Promise<PackLease>;
  stats(): { memoryBytes: number; packs: number; inUse: number };
}

export interface ModelStoreOptions {
  storage: Pick<Storage, 'get' | 'modelsBucket'>;
  dir: string;
  maxDiskBytes: number;
  maxMemoryBytes: number;
  chunkTriangles: number;
  log: Logger;
}

interface Entry {
  pack: Pack;
  refs: number;
  lastUsed: number;
}

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const packBytes = (pack: Pack): number => pack.data.length;

export function createModelStore(options: ModelStoreOptions): ModelStore {
  const memory = new Map<string, Entry>();
  const loading = new Map<string, Promise<{ pack: Pack; source: 'disk' | 's3' }>>();
  const dirFor = (prefix: string): string =>
    path.join(options.dir, createHash('sha256').update(`${PACK_FORMAT}:${options.chunkTriangles}:${prefix}`).digest('hex').slice(0, 40));

  async function fromDisk(dir: string): Promise<Pack | undefined> {
    try {
      const [indexText, data] = await Promise.all([fs.readFile(path.join(dir, 'index.json'), 'utf8'), fs.readFile(path.join(dir, 'pack.bin'))]);
      const index = JSON.parse(indexText) as PackIndex;
      if (index.format !== PACK_FORMAT || index.bytes !== data.length) return undefined;
      const now = new Date();
      await fs.utimes(dir, now, now).catch(() => undefined); // LRU order
      return { index, data };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') options.log.warn({ err, dir }, 'a cached model is unreadable; fetching it again');
      return undefined;
    }
  }

  async function fromS3(prefix: string): Promise<Pack> {
    const get = async (file: 'model.glb' | 'manifest.json'): Promise<Buffer> => {
      const object = await options.storage.get(options.storage.modelsBucket, objectKeys.output(prefix, file));
      if (!object) throw new ModelUnavailableError(`the converted model's ${file} is missing from storage`);
      return readAll(object.body);
    };
    const [glb, manifestBytes] = await Promise.all([get('model.glb'), get('manifest.json')]);
    return buildPack(glb, JSON.parse(manifestBytes.toString('utf8')) as Manifest, { chunkTriangles: options.chunkTriangles });
  }

  async function toDisk(dir: string, pack: Pack): Promise<void> {
    const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
    await fs.mkdir(tmp, { recursive: true });
    try {
      await fs.writeFile(path.join(tmp, 'pack.bin'), pack.data);
      await fs.writeFile(path.join(tmp, 'index.json'), JSON.stringify(pack.index));
      await fs.rm(dir, { recursive: true, force: true });
      await fs.rename(tmp, dir);
    } finally {
      await fs.rm(tmp, { recursive: true, force: true });
    }
    await evictDisk(dir);
  }

  /** Removes least recently used models until the cache fits its cap; never the one just written. */
  async function evictDisk(keep: string): Promise<void> {
    const names = await fs.readdir(options.dir).catch(() => [] as string[]);
    const entries: Array<{ dir: string; bytes: number; mtime: number }> = [];
    for (const name of names) {
      const dir = path.join(options.dir, name);
      try {
        const stat = await fs.stat(dir);
        if (!stat.isDirectory()) continue;
        if (name.includes('.tmp-')) {
          // Left by a process that died while writing.
          if (Date.now() - stat.mtimeMs > 3_600_000) await fs.rm(dir, { recursive: true, force: true });
          continue;
        }
        let bytes = 0;
        for (const file of await fs.readdir(dir)) bytes += (await fs.stat(path.join(dir, file))).size;
        entries.push({ dir, bytes, mtime: stat.mtimeMs });
      } catch {
        /* removed meanwhile */
      }
    }
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    for (const e of entries.sort((a, b) => a.mtime - b.mtime)) {
      if (total <= options.maxDiskBytes) break;
      if (e.dir === keep) continue;
      await fs.rm(e.dir, { recursive: true, force: true });
      total -= e.bytes;
      options.log.info({ dir: e.dir, bytes: e.bytes }, 'evicted a model from the stream cache');
    }
  }

  async function load(prefix: string): Promise<{ pack: Pack; source: 'disk' | 's3' }> {
    const dir = dirFor(prefix);
    const cached = await fromDisk(dir);
    if (cached) return { pack: cached, source: 'disk' };
    const started = performance.now();
    const pack = await fromS3(prefix);
    options.log.info({ prefix, frames: pack.index.frames.length, bytes: pack.index.bytes, ms: Math.round(performance.now() - started) }, 'prepared a model for streaming');
    await fs.mkdir(options.dir, { recursive: true });
    await toDisk(dir, pack).catch((err: unknown) => options.log.warn({ err }, 'could not write the stream cache; streaming from memory'));
    return { pack, source: 's3' };
  }

  function trimMemory(): void {
    const idle = [...memory.entries()].filter(([, e]) => e.refs === 0).sort((a, b) => a[1].lastUsed - b[1].lastUsed);
    let idleBytes = idle.reduce((n, [, e]) => n + packBytes(e.pack), 0);
    for (const [prefix, e] of idle) {
      if (idleBytes <= options.maxMemoryBytes) break;
      memory.delete(prefix);
      idleBytes -= packBytes(e.pack);
    }
  }

  function lease(prefix: string, entry: Entry, source: PackLease['source']): PackLease {
    entry.refs++;
    let released = false;
    return {
      pack: entry.pack,
      source,
      release() {
        if (released) return;
        released = true;
        entry.refs--;
        entry.lastUsed = Date.now();
        trimMemory();
      },
    };
  }

  return {
    async open(prefix) {
      const hit = memory.get(prefix);
      if (hit) return lease(prefix, hit, 'memory');
      let pending = loading.get(prefix);
      if (!pending) {
        pending = load(prefix).finally(() => loading.delete(prefix));
        loading.set(prefix, pending);
      }
      const { pack, source } = await pending;
      let entry = memory.get(prefix);
      if (!entry) memory.set(prefix, (entry = { pack, refs: 0, lastUsed: Date.now() }));
      return lease(prefix, entry, source);
    },
    stats() {
      const all = [...memory.values()];
      return { memoryBytes: all.reduce((n, e) => n + packBytes(e.pack), 0), packs: all.length, inUse: all.filter((e) => e.refs > 0).length };
    },
  };
}
