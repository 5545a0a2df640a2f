import fs from 'node:fs/promises';
import { Logger } from '@gltf-transform/core';
import path from 'node:path';
import { ConvertError, toConvertError } from './errors';
import { checkFileName, engineFor, type Format, formatFromName, sniffFormat } from './formats';
import { importModel } from './importers/index';
import { draftParts, finishManifest } from './manifest';
import { cleanUp, compress } from './optimize';
import { writeOutput } from './output';
import { occtEngine } from './importers/occt-native';
import type { ConvertJob, ConvertLimits, ConvertResult } from './types';

export interface ConvertOptions {
  /** Inputs larger than this are refused before any parsing. */
  maxInputBytes: number;
  /** The job's limits, for an engine that runs as a process of its own (the native B-rep engine). */
  limits?: ConvertLimits;
}

/** What sniffFormat reads of a file: its first 64 KiB and its last 4 KiB. */
const SAMPLE_HEAD = 64 * 1024;
const SAMPLE_TAIL = 4096;

/**
 * The whole file for an engine that parses it in this process; for one that reads the file
 * itself, only what sniffing needs (the head and the tail, joined), so that a 200 MB STEP
 * never sits in this process's memory.
 */
async function readInput(file: string, size: number, whole: boolean): Promise<Uint8Array> {
  if (whole || size <= SAMPLE_HEAD + SAMPLE_TAIL) return new Uint8Array(await fs.readFile(file));
  const handle = await fs.open(file, 'r');
  try {
    const sample = new Uint8Array(SAMPLE_HEAD + SAMPLE_TAIL);
    await handle.read(sample, 0, SAMPLE_HEAD, 0);
    await handle.read(sample, SAMPLE_HEAD, SAMPLE_TAIL, size - SAMPLE_TAIL);
    return sample;
  } finally {
    await handle.close();
  }
}

export const DEFAULT_MAX_INPUT_BYTES = 2 * 1024 ** 3;

export const failure = (err: unknown, stats: Partial<ConvertResult['stats']> = {}): ConvertResult => {
  const error = toConvertError(err);
  return {
    ok: false,
    error: error.message,
    code: error.code,
    stats: { triangles: 0, parts: 0, inputBytes: 0, outputBytes: 0, seconds: 0, ...stats },
  };
};

/**
 * One conversion, in this thread: input file in, model.glb and manifest.json out.
 * result.json is the caller's to write, since only the caller sees timeouts and crashes.
 */
export async function convertFile(job: ConvertJob, options: ConvertOptions): Promise<ConvertResult> {
  const started = performance.now();
  const quality = job.quality ?? 'normal';
  const seconds = (): number => Math.round((performance.now() - started) / 10) / 100;
  let inputBytes = 0;
  try {
    const name = path.basename(job.input);
    checkFileName(name);
    const format = formatFromName(name);
    const stat = await fs.stat(job.input).catch(() => {
      throw new ConvertError('unsupported', `the input file ${JSON.stringify(job.input)} does not exist or cannot be read`);
    });
    if (!stat.isFile()) throw new ConvertError('unsupported', `the input ${JSON.stringify(job.input)} is not a regular file`);
    inputBytes = stat.size;
    if (stat.size === 0) throw new ConvertError('empty', 'the file is empty (0 bytes); upload the file again');
    if (stat.size > options.maxInputBytes) {
      throw new ConvertError(
        'too-large',
        `the file has ${stat.size} bytes, over the limit of ${options.maxInputBytes} bytes; raise --max-input-mb or split the model`,
      );
    }
    // The native B-rep engine reads the file itself; the others parse it in this process.
    const readsItself = (f: Format): boolean => engineFor(f) === 'occt' && occtEngine() === 'native';
    let content = await readInput(job.input, stat.size, !readsItself(format));
    const effective = sniffFormat(format, content);
    // An IFC file named .stp is sniffed from its sample, then parsed here in full.
    if (content.length < stat.size && !readsItself(effective)) content = await readInput(job.input, stat.size, true);
    const native = readsItself(effective);
    const dir = path.dirname(path.resolve(job.input));
    const baseDir = job.baseDir ? path.resolve(job.baseDir) : dir;
    const rel = path.relative(baseDir, dir);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new ConvertError('unsafe-reference', `the input ${JSON.stringify(job.input)} is not inside --base-dir ${JSON.stringify(job.baseDir)}`);
    }
    const { doc, units } = await importModel({ name, format: effective, content, dir, baseDir }, quality, {
      path: job.input,
      outputDir: job.outputDir,
      limits: options.limits,
    });
    doc.setLogger(new Logger(Logger.Verbosity.WARN));
    await cleanUp(doc, { weld: !native });
    const draft = draftParts(doc);
    if (draft.triangles === 0) throw new ConvertError('corrupt', 'the file holds no triangle geometry to show');
    const glb = await compress(doc, quality);
    const manifest = finishManifest(doc, draft, { source: { name, format: effective, bytes: inputBytes }, quality, units });
    const outputBytes = await writeOutput(job.outputDir, 'model.glb', glb);
    await writeOutput(job.outputDir, 'manifest.json', JSON.stringify(manifest));
    return {
      ok: true,
      stats: {
        triangles: manifest.triangles,
        parts: manifest.parts.filter((p) => p.meshes.length > 0).length,
        inputBytes,
        outputBytes,
        seconds: seconds(),
      },
    };
  } catch (err) {
    return failure(err, { inputBytes, seconds: seconds() });
  }
}
