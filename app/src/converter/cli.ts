import fs from 'node:fs/promises';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import pkg from '../../../package.json' with { type: 'json' };
import { DEFAULT_MAX_INPUT_BYTES, failure } from './convert';
import { DEFAULT_LIMITS, IsolatedConverter, isConvertWorker, runConvertWorker } from './isolate';
import { clearOutputs, writeOutput } from './output';
import { serve } from './serve';
import { TARGET_FILES } from './export/index';
import { objZipFrom, plainGlb, stlFrom } from './export/mesh';
import { QUALITIES, type ConvertResult, type Quality } from './types';

/** Exit codes: part of the converter's contract with callers. */
export const EXIT = { ok: 0, failed: 1, usage: 2, limit: 3, crashed: 4 } as const;

export function exitCodeFor(result: ConvertResult): number {
  if (result.ok) return EXIT.ok;
  if (result.code === 'timeout' || result.code === 'memory') return EXIT.limit;
  if (result.code === 'crashed' || result.code === 'internal') return EXIT.crashed;
  return EXIT.failed;
}

const positive = (what: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${what} must be a positive number, got ${JSON.stringify(value)}.`);
  return n;
};

function program(): Command {
  return new Command('cadfleet-convert')
    .description('Convert a CAD or mesh file to a compressed GLB, a parts manifest and a result file.')
    .version(pkg.version)
    .option('-i, --input <file>', 'the CAD file: .stp .step .igs .iges .brep .stl .obj .ply .gltf .glb .fbx .3ds .dae .off .ifc')
    .option('-o, --output-dir <dir>', 'where model.glb, manifest.json and result.json go (created if missing)')
    .addOption(new Option('--target <format>', 'instead of converting: write a derived file from a converted model.glb (--input) into --output-dir as export.glb (plain, no meshopt), export.stl (binary) or export-obj.zip (OBJ + MTL)').choices(['glb', 'stl', 'obj']))
    .option('--base-dir <dir>', 'the folder referenced files (MTL, .bin, textures) may be read from, the input inside it (default: the input\'s folder)')
    .addOption(new Option('-q, --quality <preset>', 'tessellation of B-rep formats (STEP, IGES, BREP)').choices(QUALITIES).default('normal'))
    .addOption(new Option('--timeout <seconds>', 'stop a conversion that runs longer').env('CADFLEET_CONVERT_TIMEOUT').argParser(positive('--timeout')).default(DEFAULT_LIMITS.timeoutMs / 1000))
    .addOption(new Option('--max-memory <mib>', 'stop a conversion whose resident memory grows past this').env('CADFLEET_CONVERT_MAX_MEMORY_MB').argParser(positive('--max-memory')).default(DEFAULT_LIMITS.maxMemoryMb))
    .addOption(new Option('--max-input-mb <mib>', 'refuse larger input files').argParser(positive('--max-input-mb')).default(DEFAULT_MAX_INPUT_BYTES / 1024 ** 2))
    .option('--serve', 'warm mode: serve conversions from a parent process over its IPC channel (see cadfleet worker pool)')
    .addOption(new Option('--recycle-after-jobs <n>', 'warm mode: exit after this many jobs').argParser(positive('--recycle-after-jobs')).default(50))
    .addOption(new Option('--recycle-memory-mb <mib>', 'warm mode: exit after a job that leaves resident memory above this').argParser(positive('--recycle-memory-mb')).default(1024))
    .addHelpText(
      'after',
      `
Exit codes: 0 converted, 1 bad or unsupported input, 2 usage error, 3 time or memory limit, 4 converter crash.
result.json is written on every run that names --output-dir: {"ok", "error"?, "code"?, "stats"}.

Examples:
  $ cadfleet-convert --input bracket.step --output-dir out/bracket
  $ cadfleet-convert -i plant.ifc -o out/plant --quality coarse --timeout 120 --max-memory 4096
  $ cadfleet-convert -i unzipped/models/spider.obj --base-dir unzipped -o out/spider`,
    );
}

interface CliOptions {
  input?: string;
  outputDir?: string;
  baseDir?: string;
  target?: 'glb' | 'stl' | 'obj';
  quality: Quality;
  timeout: number;
  maxMemory: number;
  maxInputMb: number;
  serve?: boolean;
  recycleAfterJobs: number;
  recycleMemoryMb: number;
}

async function main(argv: string[]): Promise<number> {
  const cmd = program().exitOverride();
  try {
    cmd.parse(argv);
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode ?? EXIT.usage;
    return code === 0 ? EXIT.ok : EXIT.usage;
  }
  const opts = cmd.opts<CliOptions>();
  const entry = new URL(import.meta.url);
  const maxInputBytes = opts.maxInputMb * 1024 ** 2;
  if (opts.serve) {
    return serve({ entry, maxInputBytes, recycleAfterJobs: opts.recycleAfterJobs, recycleMemoryMb: opts.recycleMemoryMb });
  }
  if (!opts.input || !opts.outputDir) {
    process.stderr.write('cadfleet-convert: --input and --output-dir are both required (see --help)\n');
    return EXIT.usage;
  }
  if (opts.target) return exportTarget(opts.input, opts.outputDir, opts.target);
  try {
    await fs.mkdir(opts.outputDir, { recursive: true });
    await clearOutputs(opts.outputDir);
  } catch (err) {
    process.stderr.write(`cadfleet-convert: cannot use output directory ${opts.outputDir}: ${(err as Error).message}\n`);
    return EXIT.usage;
  }
  const converter = new IsolatedConverter(entry, { maxInputBytes, preload: false });
  let result: ConvertResult;
  try {
    result = await converter.convert(
      { input: opts.input, outputDir: opts.outputDir, quality: opts.quality, ...(opts.baseDir ? { baseDir: opts.baseDir } : {}) },
      { timeoutMs: opts.timeout * 1000, maxMemoryMb: opts.maxMemory },
    );
  } catch (err) {
    result = failure(err);
  }
  await writeOutput(opts.outputDir, 'result.json', JSON.stringify(result, null, 1) + '\n');
  if (!result.ok) process.stderr.write(`cadfleet-convert: ${opts.input}: ${result.error}\n`);
  const stopped = await converter.terminate();
  if (!stopped) {
    // The thread is stuck inside WebAssembly; result.json is written, so end the process hard.
    (process as unknown as { reallyExit(code: number): never }).reallyExit(exitCodeFor(result));
  }
  return exitCodeFor(result);
}

/** `--target`: a derived mesh file from a converted GLB, and result.json saying how it went. */
async function exportTarget(input: string, outputDir: string, target: 'glb' | 'stl' | 'obj'): Promise<number> {
  const started = performance.now();
  const seconds = (): number => Math.round((performance.now() - started) / 10) / 100;
  await fs.mkdir(outputDir, { recursive: true });
  const file = TARGET_FILES[target].file;
  let result: { ok: boolean; error?: string; code?: string; file?: string; bytes?: number; triangles?: number; seconds: number };
  try {
    const glb = new Uint8Array(await fs.readFile(input));
    const made = target === 'glb' ? { bytes: await plainGlb(glb), triangles: undefined } : target === 'stl' ? await stlFrom(glb) : await objZipFrom(glb);
    await fs.writeFile(path.join(outputDir, file), made.bytes);
    result = { ok: true, file, bytes: made.bytes.length, ...(made.triangles !== undefined ? { triangles: made.triangles } : {}), seconds: seconds() };
  } catch (err) {
    result = { ok: false, code: 'corrupt', error: `the ${target.toUpperCase()} export could not read the model: ${(err as Error).message}`, seconds: seconds() };
  }
  await fs.writeFile(path.join(outputDir, 'result.json'), JSON.stringify(result, null, 1) + '\n');
  if (!result.ok) process.stderr.write(`cadfleet-convert: ${input}: ${result.error}\n`);
  return result.ok ? EXIT.ok : EXIT.failed;
}

if (isConvertWorker()) {
  await runConvertWorker();
} else {
  process.exitCode = await main(process.argv);
}
