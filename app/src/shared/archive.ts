// Multi-file models in one .zip: the api lists the archive's central directory (from S3 by range
// reads, so the presigned path needs no second copy) and picks the root file to open; the worker
// extracts it into its job folder and converts the root there, companions beside it.
//
// Both sides apply the same checks, and the worker does not trust the api's: unsafe paths
// (zip-slip), symlinks, encrypted entries, nested archives, duplicate names, and limits on the
// entry count and the expanded size. Extraction counts the bytes it writes, so an entry whose
// header lies about its size stops at the limit instead of filling the disk.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { SUPPORTED_EXTENSIONS } from '../converter/formats';

export const ARCHIVE_EXTENSIONS = ['zip'] as const;
export type ArchiveKind = (typeof ARCHIVE_EXTENSIONS)[number];

/** Files that would be archives inside the archive: refused, not opened. */
const NESTED_ARCHIVE = /\.(zip|7z|rar|tar|tgz|gz|bz2|xz|zst|lz|lzma|cab|jar)$/i;

export interface ArchiveLimits {
  /** Entries (files and folders) an archive may hold. */
  maxEntries: number;
  /** Bytes all files may take once expanded: the disk a job may fill. */
  maxExpandedBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxEntries: 10_000, maxExpandedBytes: 4 * 1024 ** 3 };

export type ArchiveErrorCode = 'archive-invalid' | 'archive-too-large' | 'archive-no-model' | 'archive-root-ambiguous' | 'archive-root-not-found';

export class ArchiveError extends Error {
  constructor(
    readonly code: ArchiveErrorCode,
    message: string,
    /** For archive-root-ambiguous: the model files a client may name as `root`. */
    readonly candidates: string[] = [],
  ) {
    super(message);
    this.name = 'ArchiveError';
  }
}

export interface ArchiveEntry {
  /** Path inside the archive, `/`-separated, never absolute, never with `..`. */
  name: string;
  size: number;
  directory: boolean;
}

export interface ArchiveListing {
  entries: ArchiveEntry[];
  /** Entries left out on purpose: macOS resource forks (`__MACOSX/`, `._name`). */
  ignored: number;
  /** Sum of the files' declared sizes. */
  expandedBytes: number;
}

export const isArchiveName = (name: string): boolean => ARCHIVE_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(`.${ext}`));

const extensionOf = (name: string): string => {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
};

/** A file the converter can open as a model (companions such as .mtl, .bin and images are not). */
export const isModelFile = (name: string, accepted: readonly string[] = SUPPORTED_EXTENSIONS): boolean =>
  !name.endsWith('/') && accepted.includes(extensionOf(name)) && !ARCHIVE_EXTENSIONS.includes(extensionOf(name) as ArchiveKind);

/** Resource forks that macOS's Finder writes into every zip it makes: not part of the model. */
const ignoredEntry = (name: string): boolean => name.startsWith('__MACOSX/') || name.split('/').some((part) => part.startsWith('._'));

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

function checkEntry(entry: yauzl.Entry): void {
  const name = entry.fileName;
  if (/^[a-z]:/i.test(name) || name.startsWith('/')) {
    throw new ArchiveError('archive-invalid', `the archive holds an entry with an absolute path (${JSON.stringify(name)}); archive the files with paths relative to the model`);
  }
  if (name.split('/').some((part) => part === '..')) {
    throw new ArchiveError('archive-invalid', `the archive holds an entry that climbs out of its folder (${JSON.stringify(name)}); such entries are refused`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) throw new ArchiveError('archive-invalid', `an entry name in the archive contains control characters (${JSON.stringify(name)})`);
  if (entry.isEncrypted()) {
    throw new ArchiveError('archive-invalid', `the archive entry ${JSON.stringify(name)} is encrypted; upload an archive without a password`);
  }
  if (((entry.externalFileAttributes >>> 16) & S_IFMT) === S_IFLNK) {
    throw new ArchiveError('archive-invalid', `the archive entry ${JSON.stringify(name)} is a symbolic link; archive the file it points to instead`);
  }
  if (!name.endsWith('/') && NESTED_ARCHIVE.test(name)) {
    throw new ArchiveError('archive-invalid', `the archive holds another archive (${JSON.stringify(name)}); nested archives are not opened: put its files in the outer archive`);
  }
}

/** yauzl's own refusals (a bad path, a truncated directory) in words a client can act on. */
function wrapZipError(err: unknown): ArchiveError {
  if (err instanceof ArchiveError) return err;
  const message = (err as Error).message ?? String(err);
  if (/too many bytes in the stream|expected \d+\. got/i.test(message)) {
    return new ArchiveError('archive-invalid', `an entry of the archive holds more bytes than its header declares (${message}); the archive is damaged or hostile`);
  }
  if (/absolute path|invalid relative path|invalid characters/i.test(message)) {
    return new ArchiveError('archive-invalid', `the archive holds an entry with an unsafe path (${message}); such entries are refused`);
  }
  if (/too many length or distance symbols|invalid|unexpected|end of central directory|signature|truncated|bad/i.test(message)) {
    return new ArchiveError('archive-invalid', `the file is not a readable zip archive (${message}); upload the complete archive`);
  }
  return new ArchiveError('archive-invalid', `the zip archive could not be read: ${message}`);
}

/** Reads an archive's directory: every entry, checked, and the limits applied to the declared sizes. */
function readDirectory(zip: yauzl.ZipFile, limits: ArchiveLimits, onEntry?: (entry: yauzl.Entry, next: () => void) => void): Promise<ArchiveListing> {
  return new Promise((resolve, reject) => {
    if (zip.entryCount > limits.maxEntries) {
      try {
        zip.close();
      } catch {
        // already closed
      }
      reject(new ArchiveError('archive-too-large', `the archive holds ${zip.entryCount} entries; the limit is ${limits.maxEntries}`));
      return;
    }
    const entries: ArchiveEntry[] = [];
    const seen = new Set<string>();
    let ignored = 0;
    let expandedBytes = 0;
    let failed = false;
    const fail = (err: unknown): void => {
      if (failed) return;
      failed = true;
      try {
        zip.close();
      } catch {
        // already closed by autoClose
      }
      reject(wrapZipError(err));
    };
    zip.on('error', fail);
    zip.on('end', () => {
      if (!failed) resolve({ entries, ignored, expandedBytes });
    });
    zip.on('entry', (entry: yauzl.Entry) => {
      try {
        checkEntry(entry);
        if (ignoredEntry(entry.fileName)) {
          ignored++;
          zip.readEntry();
          return;
        }
        const directory = entry.fileName.endsWith('/');
        const key = entry.fileName.replace(/\/$/, '').normalize('NFC');
        if (seen.has(key)) {
          throw new ArchiveError('archive-invalid', `the archive holds ${JSON.stringify(entry.fileName)} twice; every path in an archive must be unique`);
        }
        seen.add(key);
        if (!directory) expandedBytes += entry.uncompressedSize;
        if (expandedBytes > limits.maxExpandedBytes) {
          throw new ArchiveError('archive-too-large', `the archive expands to more than ${limits.maxExpandedBytes} bytes (the limit); split the model or raise CADFLEET_ARCHIVE_MAX_EXPANDED_MB`);
        }
        entries.push({ name: entry.fileName, size: entry.uncompressedSize, directory });
        if (onEntry) onEntry(entry, () => zip.readEntry());
        else zip.readEntry();
      } catch (err) {
        fail(err);
      }
    });
    zip.readEntry();
  });
}

const ZIP_OPTIONS: yauzl.Options = { lazyEntries: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false, autoClose: true };

/** A zip read through range reads of its bytes (an S3 object): only the central directory is fetched. */
export function listZipFromRanges(size: number, readRange: (start: number, end: number) => Promise<Readable>, limits: ArchiveLimits): Promise<ArchiveListing> {
  class RangeReader extends yauzl.RandomAccessReader {
    override _readStreamForRange(start: number, end: number): Readable {
      const out = new PassThrough();
      readRange(start, end).then(
        (body) => body.on('error', (err) => out.destroy(err)).pipe(out),
        (err: unknown) => out.destroy(err as Error),
      );
      return out;
    }
  }
  return new Promise((resolve, reject) => {
    yauzl.fromRandomAccessReader(new RangeReader(), size, ZIP_OPTIONS, (err, zip) => {
      if (err || !zip) return reject(wrapZipError(err));
      readDirectory(zip, limits).then(resolve, reject);
    });
  });
}

export function listZipFile(file: string, limits: ArchiveLimits): Promise<ArchiveListing> {
  return new Promise((resolve, reject) => {
    yauzl.open(file, ZIP_OPTIONS, (err, zip) => {
      if (err || !zip) return reject(wrapZipError(err));
      readDirectory(zip, limits).then(resolve, reject);
    });
  });
}

/**
 * The file to open: the one the client named, or the only model file in the archive. Several
 * model files and no name is a question back to the client, with the candidates.
 */
export function chooseRoot(listing: ArchiveListing, requested: string | undefined, accepted?: readonly string[]): string {
  const models = listing.entries.filter((e) => !e.directory && isModelFile(e.name, accepted)).map((e) => e.name);
  if (requested !== undefined) {
    const wanted = requested.replace(/\\/g, '/').replace(/^\.\//, '');
    if (!listing.entries.some((e) => !e.directory && e.name === wanted)) {
      throw new ArchiveError('archive-root-not-found', `the archive has no file ${JSON.stringify(requested)}${models.length ? `; its model files: ${models.join(', ')}` : ''}`, models);
    }
    if (!isModelFile(wanted, accepted)) {
      throw new ArchiveError('archive-root-not-found', `${JSON.stringify(requested)} is not a model file cadfleet converts${models.length ? `; the archive's model files: ${models.join(', ')}` : ''}`, models);
    }
    return wanted;
  }
  if (models.length === 1) return models[0]!;
  if (models.length === 0) {
    throw new ArchiveError('archive-no-model', `the archive holds no model file (${SUPPORTED_EXTENSIONS.map((e) => `.${e}`).join(' ')}); it has ${listing.entries.filter((e) => !e.directory).length} other file(s)`);
  }
  throw new ArchiveError(
    'archive-root-ambiguous',
    `the archive holds ${models.length} model files: ${models.slice(0, 20).join(', ')}${models.length > 20 ? ', ...' : ''}; name the one to open in the "root" field`,
    models,
  );
}

/** Counts bytes across all entries and stops the extraction at the limit. */
function byteLimit(state: { written: number }, limit: number): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      state.written += chunk.length;
      if (state.written > limit) {
        callback(new ArchiveError('archive-too-large', `the archive expanded past the limit of ${limit} bytes; split the model or raise CADFLEET_ARCHIVE_MAX_EXPANDED_MB`));
        return;
      }
      callback(null, chunk);
    },
  });
}

/**
 * Extracts `file` into `dest` (which must exist and be empty): every entry checked again, files
 * created exclusively (never through an existing path), the expanded bytes counted as written.
 * Returns the listing. On any error what was written stays inside `dest` for the caller to remove.
 */
export async function extractZip(file: string, dest: string, limits: ArchiveLimits): Promise<ArchiveListing> {
  const root = await fsp.realpath(dest);
  const state = { written: 0 };
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, ZIP_OPTIONS, (err, z) => (err || !z ? reject(wrapZipError(err)) : resolve(z))),
  );
  return readDirectory(zip, limits, (entry, next) => {
    const target = path.join(root, ...entry.fileName.split('/'));
    const rel = path.relative(root, target);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      zip.emit('error', new ArchiveError('archive-invalid', `the archive entry ${JSON.stringify(entry.fileName)} would land outside its folder`));
      return;
    }
    void (async () => {
      if (entry.fileName.endsWith('/')) {
        await fsp.mkdir(target, { recursive: true });
        return;
      }
      await fsp.mkdir(path.dirname(target), { recursive: true });
      const stream = await new Promise<Readable>((resolve, reject) => zip.openReadStream(entry, (err, s) => (err || !s ? reject(err) : resolve(s))));
      // 'wx': never replaces or follows anything already there.
      await pipeline(stream, byteLimit(state, limits.maxExpandedBytes), fs.createWriteStream(target, { flags: 'wx', mode: 0o600 }));
    })().then(next, (err: unknown) => {
      const code = (err as { code?: string }).code;
      zip.emit('error', code === 'EEXIST' || code === 'ENOTDIR' ? new ArchiveError('archive-invalid', `the archive entry ${JSON.stringify(entry.fileName)} collides with another entry's path`) : err);
    });
  });
}
