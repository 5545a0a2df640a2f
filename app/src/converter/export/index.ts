// Derived files ("targets") of a converted model: each runs as a process of its own, held to a
// time limit and a resident-memory limit like a conversion, and writes one file.
//   glb, stl, obj: from the model's viewing GLB, by `cadfleet-convert --target` (mesh.ts)
//   step, iges:    from the uploaded B-rep, by OpenCASCADE's DRAW (brep.ts)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { converterBin } from '../index';
import { type BrepSource, type BrepTarget, drawScript, occtDraw, occtLibraryLinks } from './brep';

export const TARGETS = ['glb', 'stl', 'obj', 'step', 'iges'] as const;
export type Target = (typeof TARGETS)[number];

export const MESH_TARGETS: readonly Target[] = ['glb', 'stl', 'obj'];
const BREP_SOURCES: readonly string[] = ['step', 'iges', 'brep'];
/** A model's format is its upload's extension (stp, igs, brp, ...): the reader it stands for. */
const READER: Readonly<Record<string, string>> = { stp: 'step', igs: 'iges', brp: 'brep' };
export const sourceReader = (format: string): string => READER[format] ?? format;

/** The file an export writes, what it is served as, and the name a download gets (`<model>.<ext>`). */
export const TARGET_FILES: Readonly<Record<Target, { file: string; contentType: string; ext: string }>> = {
  glb: { file: 'export.glb', contentType: 'model/gltf-binary', ext: 'glb' },
  stl: { file: 'export.stl', contentType: 'model/stl', ext: 'stl' },
  obj: { file: 'export-obj.zip', contentType: 'application/zip', ext: 'obj.zip' },
  step: { file: 'export.step', contentType: 'model/step', ext: 'step' },
  iges: { file: 'export.iges', contentType: 'model/iges', ext: 'iges' },
};

/** Why `target` cannot be made from a model converted from `sourceFormat`, or undefined. */
export function targetRefusal(target: string, sourceFormat: string): string | undefined {
  if (!(TARGETS as readonly string[]).includes(target)) return `${JSON.stringify(target)} is not a target; choose from ${TARGETS.join(', ')}`;
  if ((target === 'step' || target === 'iges') && !BREP_SOURCES.includes(sourceReader(sourceFormat))) {
    return `${target.toUpperCase()} needs a B-rep model (uploaded as STEP, IGES or BREP); this one came from ${sourceFormat.toUpperCase()}, a mesh, and a mesh has no exact surfaces to write`;
  }
  return undefined;
}

export function parseTargets(value: unknown, sourceFormat: string | undefined): Target[] {
  if (value === undefined || value === '') return [];
  if (typeof value !== 'string') throw new TargetError(`targets must be a comma-separated list such as "stl,step", got ${JSON.stringify(value)}`);
  const targets = [...new Set(value.split(',').map((t) => t.trim().toLowerCase()).filter(Boolean))];
  for (const t of targets) {
    const why = sourceFormat ? targetRefusal(t, sourceFormat) : (TARGETS as readonly string[]).includes(t) ? undefined : targetRefusal(t, 'step');
    if (why) throw new TargetError(why);
  }
  return targets as Target[];
}

export class TargetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TargetError';
  }
}

export interface ExportLimits {
  timeoutMs: number;
  maxMemoryMb: number;
}

export interface ExportJob {
  target: Target;
  /** The model's viewing GLB (mesh targets) or the uploaded B-rep file (step, iges). */
  input: string;
  /** The upload's format, for B-rep targets. */
  sourceFormat: string;
  outputDir: string;
  /** A folder to keep helper files in (the DRAW library links). */
  cacheDir: string;
}

export interface ExportResult {
  ok: boolean;
  error?: string;
  /** unsupported | timeout | memory | crashed */
  code?: string;
  file?: string;
  bytes?: number;
  triangles?: number;
  seconds: number;
}

function rssMb(pid: number): number {
  try {
    const kb = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** Runs `argv` under a wall-clock limit and a watchdog on its resident memory. */
function runLimited(argv: string[], env: NodeJS.ProcessEnv, limits: ExportLimits): Promise<{ code: number | null; killedFor?: 'timeout' | 'memory'; peakMb: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    let killedFor: 'timeout' | 'memory' | undefined;
    let peakMb = 0;
    const timer = setTimeout(() => {
      killedFor ??= 'timeout';
      child.kill('SIGKILL');
    }, limits.timeoutMs);
    const sampler = setInterval(() => {
      const mb = child.pid ? rssMb(child.pid) : 0;
      peakMb = Math.max(peakMb, mb);
      if (mb > limits.maxMemoryMb) {
        killedFor ??= 'memory';
        child.kill('SIGKILL');
      }
    }, 100);
    const finish = (code: number | null): void => {
      clearTimeout(timer);
      clearInterval(sampler);
      resolve({ code, killedFor, peakMb, output });
    };
    child.once('error', (err) => {
      output += err.message;
      finish(127);
    });
    child.once('exit', (code) => finish(code));
  });
}

/** Makes one derived file. Never throws for a failure of the export itself: the result says it. */
export async function runExport(job: ExportJob, limits: ExportLimits): Promise<ExportResult> {
  const started = performance.now();
  const seconds = (): number => Math.round((performance.now() - started) / 10) / 100;
  const spec = TARGET_FILES[job.target];
  const outFile = path.join(job.outputDir, spec.file);
  fs.mkdirSync(job.outputDir, { recursive: true });
  const refusal = targetRefusal(job.target, job.sourceFormat);
  if (refusal && !MESH_TARGETS.includes(job.target)) return { ok: false, code: 'unsupported', error: refusal, seconds: seconds() };

  let run: Awaited<ReturnType<typeof runLimited>>;
  if (MESH_TARGETS.includes(job.target)) {
    run = await runLimited([process.execPath, converterBin(), '--target', job.target, '--input', job.input, '--output-dir', job.outputDir], process.env, limits);
  } else {
    if (!occtDraw()) {
      return { ok: false, code: 'crashed', error: 'this worker has no OpenCASCADE writer (the occt-draw package); install it (the host image has it) or send B-rep exports to hosts that do', seconds: seconds() };
    }
    const script = path.join(job.outputDir, 'export.tcl');
    fs.writeFileSync(script, drawScript(sourceReader(job.sourceFormat) as BrepSource, path.resolve(job.input), job.target as BrepTarget, path.resolve(outFile)));
    const env = { ...process.env, LD_LIBRARY_PATH: occtLibraryLinks(job.cacheDir), DISPLAY: '' };
    run = await runLimited(['occt-draw', '-b', '-f', script], env, limits);
    fs.rmSync(script, { force: true });
  }
  if (run.killedFor === 'timeout') return { ok: false, code: 'timeout', error: `the ${job.target.toUpperCase()} export took longer than the limit of ${limits.timeoutMs / 1000} s and was stopped`, seconds: seconds() };
  if (run.killedFor === 'memory') return { ok: false, code: 'memory', error: `the ${job.target.toUpperCase()} export used over ${limits.maxMemoryMb} MiB and was stopped`, seconds: seconds() };
  if (MESH_TARGETS.includes(job.target)) {
    try {
      const result = JSON.parse(fs.readFileSync(path.join(job.outputDir, 'result.json'), 'utf8')) as ExportResult;
      return { ...result, seconds: seconds() };
    } catch {
      return { ok: false, code: 'crashed', error: `the exporter exited (code ${run.code}) without a result: ${run.output.trim().split('\n').slice(-3).join(' / ')}`, seconds: seconds() };
    }
  }
  if (run.code !== 0 || !fs.existsSync(outFile) || fs.statSync(outFile).size === 0) {
    const said = run.output.split('\n').filter((l) => /error|fail|cannot|not/i.test(l)).slice(-3).join(' / ');
    return { ok: false, code: 'crashed', error: `OpenCASCADE could not write the ${job.target.toUpperCase()} file (exit ${run.code})${said ? `: ${said}` : ''}`, seconds: seconds() };
  }
  return { ok: true, file: spec.file, bytes: fs.statSync(outFile).size, seconds: seconds() };
}
