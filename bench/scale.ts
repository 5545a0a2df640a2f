// `npm run bench -- scale`: cadfleet-convert on assemblies of real size against native
// OpenCASCADE doing the same job in the same run (Debian's occt-draw: ReadStep with XDE, incmesh
// at the converter's deflection, WriteGltf). The assemblies are written by OpenCASCADE itself
// (bench/assembly.tcl), kept in the system's temporary folder between runs, never committed.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { drawScript, occtDrawEnv } from './convert';
import { QUICK } from './fleet';
import { median, type Row, type Section, spread } from './report';

/** Runs of each command per assembly: this machine is noisy, and the 5,041-part pair takes four minutes. */
const runsFor = (parts: number): number => Number(process.env.BENCH_RUNS ?? (QUICK ? 1 : parts > 2000 ? 2 : 5));
const BIN = path.resolve('bin/cadfleet-convert.js');
const GENERATOR = path.resolve('bench/assembly.tcl');
const TIME = '/usr/bin/time';

interface Assembly {
  label: string;
  parts: number;
  instanced: boolean;
}

/** About 100, 1,000 and 5,000 parts on a square grid, and one part placed 1,000 times. */
const ASSEMBLIES: Assembly[] = [
  { label: '100 parts', parts: 100, instanced: false },
  { label: '1,024 parts', parts: 1024, instanced: false },
  ...(QUICK ? [] : [{ label: '5,041 parts', parts: 5041, instanced: false }]),
  { label: 'one part placed 1,024 times', parts: 1024, instanced: true },
];

interface Measured {
  seconds: number;
  peakMb: number;
}

function requireTools(): NodeJS.ProcessEnv {
  const env = occtDrawEnv();
  if (!fs.existsSync(TIME)) throw new Error('GNU time (/usr/bin/time) is not installed; it measures peak memory: bash scripts/setup.sh');
  return env;
}

/** The assembly's STEP file, written once per generator version and size. */
function assembly(a: Assembly, env: NodeJS.ProcessEnv): string {
  const version = crypto.createHash('sha256').update(fs.readFileSync(GENERATOR)).digest('hex').slice(0, 12);
  const dir = path.join(os.tmpdir(), 'cadfleet-bench-scale');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${a.instanced ? 'instanced' : 'distinct'}-${a.parts}-${version}.stp`);
  if (fs.existsSync(file)) return file;
  process.stderr.write(`  writing the ${a.label} assembly with OpenCASCADE ...\n`);
  const started = performance.now();
  const r = spawnSync('occt-draw', ['-b', '-f', GENERATOR], {
    env: { ...env, PARTS: String(a.parts), INSTANCED: a.instanced ? '1' : '0', OUT: `${file}.tmp` },
    stdio: 'ignore',
  });
  if (r.status !== 0 || !fs.existsSync(`${file}.tmp`)) throw new Error(`occt-draw could not write the ${a.label} assembly (exit ${r.status})`);
  fs.renameSync(`${file}.tmp`, file);
  process.stderr.write(`  ... ${(fs.statSync(file).size / 1e6).toFixed(1)} MB in ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  return file;
}

/** Runs a command under GNU time: wall seconds and the peak resident memory of its largest process. */
function measure(argv: string[], env: NodeJS.ProcessEnv, what: string): Measured {
  const report = path.join(os.tmpdir(), `cadfleet-bench-time-${process.pid}`);
  const r = spawnSync(TIME, ['-f', '%e %M', '-o', report, ...argv], { env, stdio: 'ignore' });
  const [seconds, kb] = fs.readFileSync(report, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  fs.rmSync(report, { force: true });
  if (r.status !== 0) throw new Error(`${what} failed (exit ${r.status})`);
  return { seconds: seconds!, peakMb: kb! / 1024 };
}

/** The sizes of a GLB's JSON chunk (the scene: nodes, names, placements) and binary chunk (geometry). */
function glbChunks(file: string): { json: number; bin: number; nodes: number } {
  const data = fs.readFileSync(file);
  const json = data.readUInt32LE(12);
  const nodes = (JSON.parse(data.subarray(20, 20 + json).toString('utf8')) as { nodes?: unknown[] }).nodes?.length ?? 0;
  return { json, bin: data.length > 20 + json ? data.readUInt32LE(20 + json) : 0, nodes };
}

/** Triangles in a GLB, from its JSON chunk: the index counts of its triangle primitives. */
function glbTriangles(file: string): number {
  const data = fs.readFileSync(file);
  const json = JSON.parse(data.subarray(20, 20 + data.readUInt32LE(12)).toString('utf8')) as {
    meshes?: Array<{ primitives: Array<{ indices?: number; mode?: number }> }>;
    accessors: Array<{ count: number }>;
    nodes?: Array<{ mesh?: number }>;
  };
  // Each node that draws a mesh draws all its triangles: instances count once per placement.
  let total = 0;
  for (const node of json.nodes ?? []) {
    if (node.mesh === undefined) continue;
    for (const prim of json.meshes![node.mesh]!.primitives) {
      if ((prim.mode ?? 4) === 4 && prim.indices !== undefined) total += json.accessors[prim.indices]!.count / 3;
    }
  }
  return total;
}

export async function benchScale(): Promise<Section> {
  const env = requireTools();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-scale-'));
  const rows: Row[] = [];
  const growth: Record<'ours' | 'native', number[]> = { ours: [], native: [] };
  let single: { bytes: number; geometry: number; nodes: number } | undefined;
  try {
    for (const a of ASSEMBLIES) {
      const file = assembly(a, env);
      const ours: Measured[] = [];
      const native: Measured[] = [];
      let out = { bytes: 0, geometry: 0, nodes: 0, triangles: 0, nativeBytes: 0, nativeTriangles: 0 };
      // Alternating, after one untimed run of each: the file cache and the CPU settle.
      for (let run = -1; run < runsFor(a.parts); run++) {
        const dir = path.join(work, `${a.parts}-${a.instanced}-${run}`);
        const o = measure(
          [process.execPath, BIN, '--input', file, '--output-dir', dir, '--timeout', '3600', '--max-memory', '30000', '--max-input-mb', '4096'],
          env,
          `cadfleet-convert on the ${a.label} assembly`,
        );
        const script = path.join(work, `${a.parts}-${run}.tcl`);
        const glb = path.join(work, `${a.parts}-${a.instanced}-${run}-native.glb`);
        fs.writeFileSync(script, drawScript(file, glb));
        const n = measure(['occt-draw', '-b', '-f', script], env, `occt-draw on the ${a.label} assembly`);
        if (run < 0) {
          const result = JSON.parse(fs.readFileSync(path.join(dir, 'result.json'), 'utf8')) as { stats: { triangles: number; outputBytes: number } };
          const { bin: geometry, nodes } = glbChunks(path.join(dir, 'model.glb'));
          out = { bytes: result.stats.outputBytes, geometry, nodes, triangles: result.stats.triangles, nativeBytes: fs.statSync(glb).size, nativeTriangles: glbTriangles(glb) };
        } else {
          ours.push(o);
          native.push(n);
        }
        fs.rmSync(dir, { recursive: true, force: true });
        fs.rmSync(glb, { force: true });
      }
      const t = median(ours.map((m) => m.seconds));
      const nt = median(native.map((m) => m.seconds));
      const mem = median(ours.map((m) => m.peakMb));
      const nmem = median(native.map((m) => m.peakMb));
      process.stderr.write(`  ${a.label}: cadfleet-convert ${t.toFixed(2)} s ${mem.toFixed(0)} MiB, native ${nt.toFixed(2)} s ${nmem.toFixed(0)} MiB\n`);
      const mb = (fs.statSync(file).size / 1e6).toFixed(1);
      rows.push(
        { name: `${a.label} (${mb} MB STEP): native OCCT time`, median: nt, unit: 's', spread: spread(native.map((m) => m.seconds), 2) },
        { name: `${a.label}: cadfleet-convert time`, median: t, unit: 's', spread: spread(ours.map((m) => m.seconds), 2), baseline: 'native', ratio: t / nt },
        { name: `${a.label}: cadfleet-convert peak memory`, median: mem, unit: 'MiB', spread: spread(ours.map((m) => m.peakMb), 0), baseline: 'native', ratio: mem / nmem, note: `native ${nmem.toFixed(0)} MiB` },
        {
          name: `${a.label}: output GLB`,
          median: out.bytes / 1e6,
          unit: 'MB',
          baseline: 'native',
          ratio: out.bytes / out.nativeBytes,
          note: `${out.triangles} triangles; native ${(out.nativeBytes / 1e6).toFixed(1)} MB, ${out.nativeTriangles} triangles`,
        },
      );
      if (!a.instanced) {
        growth.ours.push(t);
        growth.native.push(nt);
      } else {
        single = { bytes: out.bytes, geometry: out.geometry, nodes: out.nodes };
      }
    }
    // The single part converted alone: the instanced assembly's GLB against it.
    if (single) {
      const one = assembly({ label: 'one part', parts: 1, instanced: true }, env);
      const dir = path.join(work, 'one');
      measure([process.execPath, BIN, '--input', one, '--output-dir', dir], env, 'cadfleet-convert on one part');
      const alone = glbChunks(path.join(dir, 'model.glb'));
      rows.push(
        { name: 'one part placed 1,024 times: geometry (GLB binary chunk) / one part\'s', median: single.geometry / alone.bin, unit: 'x', note: `${single.geometry} and ${alone.bin} bytes` },
        { name: 'one part placed 1,024 times: whole GLB / one part\'s', median: single.bytes / (alone.bin + alone.json), unit: 'x', note: `${single.bytes} bytes, the rest the JSON of ${single.nodes} nodes (every placement is a part of the manifest)` },
      );
    }
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
  const notes = [
    `Median of ${runsFor(1000)} runs each (${runsFor(5041)} for 5,041 parts), cadfleet-convert and native alternating, after one untimed run of each. Time is the whole process (start-up included); peak memory is the largest single process (GNU time), the native engine's own for cadfleet-convert. The 100-part row's ratio is mostly process start-up.`,
  ];
  if (growth.ours.length >= 3) {
    const [, thousand, fiveThousand] = growth.ours;
    const [, nThousand, nFiveThousand] = growth.native;
    notes.push(
      `Growth from 1,024 to 5,041 parts (4.9x the parts): cadfleet-convert ${(fiveThousand! / thousand!).toFixed(2)}x the time, native ${(nFiveThousand! / nThousand!).toFixed(2)}x.`,
    );
  }
  return { title: `scale: STEP assemblies of real size against native OpenCASCADE 7.6 (occt-draw), ${os.availableParallelism()} cores`, rows, notes };
}
