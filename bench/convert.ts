import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConverter } from '../app/src/converter/index';
import { occtDraw, occtLibraryLinks } from '../app/src/converter/export/brep';
import { OCCT_QUALITY } from '../app/src/converter/importers/occt';
import { cax, CAX_IF_STEP } from '../test/helpers/samples';
import { median, type Section, spread } from './report';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BIN = path.resolve('bin/cadfleet-convert.js');

/** The environment occt-draw runs in (its libraries' unversioned names: app/src/converter/export/brep.ts), or a failure saying how to install it. */
export function occtDrawEnv(): NodeJS.ProcessEnv {
  if (!occtDraw()) throw new Error('occt-draw is not installed (the native baseline): bash scripts/setup.sh');
  return { ...process.env, LD_LIBRARY_PATH: occtLibraryLinks(path.join(os.tmpdir(), 'cadfleet-bench-occt')) };
}

/** The same job natively: read STEP with XDE, mesh with the same relative deflection, write GLB (the scale bench's baseline too). */
export function drawScript(input: string, output: string): string {
  const { linearDeflection, angularDeflection } = OCCT_QUALITY.normal;
  return [
    'pload XDE OCAF MODELING VISUALIZATION',
    `ReadStep D {${input}}`,
    'XGetOneShape s D',
    'set b [bounding s]',
    `set d [expr {(([lindex $b 3]-[lindex $b 0])+([lindex $b 4]-[lindex $b 1])+([lindex $b 5]-[lindex $b 2]))/3.0*${linearDeflection}}]`,
    `incmesh s $d -a ${((angularDeflection * 180) / Math.PI).toFixed(2)}`,
    `WriteGltf D {${output}}`,
    `if {![file exists {${output}}]} { exit 3 }`,
    'exit 0',
  ].join('\n');
}

function timed(fn: () => void): number {
  const started = performance.now();
  fn();
  return (performance.now() - started) / 1000;
}

export async function benchConvert(): Promise<Section> {
  const files = CAX_IF_STEP.map((name) => cax(name));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-convert-'));
  const env = occtDrawEnv();
  const perFile = { cold: [] as number[], warm: [] as number[], native: [] as number[] };
  const sizes = { input: 0, output: 0, nativeOutput: 0 };

  const pool = createConverter({ mode: 'pool', poolSize: 1, onOutput: () => undefined });
  await pool.warmUp();
  try {
    for (const [i, file] of files.entries()) {
      const name = path.basename(file);
      const cold: number[] = [];
      const warm: number[] = [];
      const native: number[] = [];
      // One untimed run each first: file cache and CPU frequency settle.
      for (let run = -1; run < RUNS; run++) {
        const out = path.join(work, `${i}-${run}`);
        const c = timed(() => {
          const r = spawnSync(process.execPath, [BIN, '--input', file, '--output-dir', `${out}-cold`], { stdio: 'ignore' });
          if (r.status !== 0) throw new Error(`cadfleet-convert failed on ${name}`);
        });
        const started = performance.now();
        const result = await pool.convert({ input: file, outputDir: `${out}-warm` });
        if (!result.ok) throw new Error(`warm conversion failed on ${name}: ${result.error}`);
        const w = (performance.now() - started) / 1000;
        const script = path.join(work, `${i}-${run}.tcl`);
        fs.writeFileSync(script, drawScript(file, `${out}-native.glb`));
        const n = timed(() => {
          const r = spawnSync('occt-draw', ['-b', '-f', script], { env, stdio: 'ignore' });
          if (r.status !== 0 || !fs.existsSync(`${out}-native.glb`)) throw new Error(`occt-draw failed on ${name}`);
        });
        if (run >= 0) {
          cold.push(c);
          warm.push(w);
          native.push(n);
        } else {
          sizes.input += fs.statSync(file).size;
          sizes.output += result.stats.outputBytes;
          sizes.nativeOutput += fs.statSync(`${out}-native.glb`).size;
        }
      }
      perFile.cold.push(median(cold));
      perFile.warm.push(median(warm));
      perFile.native.push(median(native));
      process.stderr.write(`  ${name}: cold ${median(cold).toFixed(3)} s, warm ${median(warm).toFixed(3)} s, native ${median(native).toFixed(3)} s\n`);
    }
  } finally {
    await pool.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
  const native = median(perFile.native);
  const rows = [
    { name: 'occt-draw native (ReadStep, incmesh, WriteGltf)', median: native, unit: 's/file', spread: spread(perFile.native) },
    { name: 'cadfleet-convert cold (new process per file)', median: median(perFile.cold), unit: 's/file', spread: spread(perFile.cold), baseline: 'native', ratio: median(perFile.cold) / native },
    { name: 'cadfleet-convert warm (pool process)', median: median(perFile.warm), unit: 's/file', spread: spread(perFile.warm), baseline: 'native', ratio: median(perFile.warm) / native },
    { name: 'output GLB size / input STEP size', median: sizes.output / sizes.input, unit: '', note: `${sizes.output} of ${sizes.input} bytes` },
    { name: 'output GLB size / native uncompressed GLB', median: sizes.output / sizes.nativeOutput, unit: '', note: `${sizes.output} of ${sizes.nativeOutput} bytes` },
  ];
  return {
    title: `convert: the CAx-IF STEP set (${files.length} files, median of ${RUNS} runs per file, then median over files)`,
    rows,
    notes: ['Spread is the range of the per-file medians. Native and cold times include process start; warm time is one job in an already running pool process.'],
  };
}
