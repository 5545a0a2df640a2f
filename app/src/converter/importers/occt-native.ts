// The native engine for B-rep formats: app/native/cadfleet-occt.cpp, built against Debian's
// OpenCASCADE 7.6 by `npm run build` (scripts/build-native.mjs) and shipped in the release.
// It reads the file into an XDE document, meshes each distinct part once on every core and
// writes a GLB whose instances share their part's mesh; this module reads that GLB back as a
// glTF-Transform document for the TypeScript stage (weld, meshopt, manifest).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConvertError } from '../errors';
import { gltfIO } from '../optimize';
import type { ConvertErrorCode, ConvertLimits, Quality } from '../types';
import type { Imported, ImportInput } from './index';
import { OCCT_QUALITY } from './occt';
import { MATTE, MaterialCache } from './build';
import type { Document } from '@gltf-transform/core';

export const NATIVE_BINARY = 'cadfleet-occt';

/**
 * The binary: CADFLEET_OCCT_BIN, else `native/cadfleet-occt` in a folder above this module (the
 * release: app/native/) or `dist/native/cadfleet-occt` (a checkout after `npm run build`).
 */
export function nativeBinary(): string | undefined {
  if (process.env.CADFLEET_OCCT_BIN) return process.env.CADFLEET_OCCT_BIN;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    for (const candidate of [path.join(dir, 'native', NATIVE_BINARY), path.join(dir, 'dist', 'native', NATIVE_BINARY)]) {
      if (fs.existsSync(candidate)) return candidate;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** The B-rep engine: `native` (the default), or `wasm` (occt-import-js) where no native build exists. */
export function occtEngine(): 'native' | 'wasm' {
  const chosen = process.env.CADFLEET_OCCT_ENGINE ?? 'native';
  if (chosen !== 'native' && chosen !== 'wasm') {
    throw new ConvertError('internal', `CADFLEET_OCCT_ENGINE is ${JSON.stringify(chosen)}; it must be native or wasm`);
  }
  return chosen;
}

interface NativeReport {
  ok: boolean;
  code?: ConvertErrorCode;
  error?: string;
  parts?: number;
  triangles?: number;
  readSeconds?: number;
  meshSeconds?: number;
  writeSeconds?: number;
  peakMb?: number;
}

const CODES: ReadonlySet<string> = new Set(['corrupt', 'unsupported', 'memory', 'timeout', 'internal']);

/** Runs the binary on one file; resolves with its report, rejects with the ConvertError it names. */
export function runNative(args: { format: string; input: string; output: string; quality: Quality; limits?: ConvertLimits }): Promise<NativeReport> {
  const binary = nativeBinary();
  if (!binary) {
    throw new ConvertError(
      'internal',
      `the native B-rep engine (${NATIVE_BINARY}) is not built: run bash scripts/setup.sh (it installs OpenCASCADE's -dev packages) and npm run build, or set CADFLEET_OCCT_ENGINE=wasm`,
    );
  }
  const { linearDeflection, angularDeflection } = OCCT_QUALITY[args.quality];
  const argv = ['--format', args.format, '--input', args.input, '--output', args.output, '--linear', String(linearDeflection), '--angular', String(angularDeflection)];
  if (args.limits) argv.push('--max-memory-mb', String(args.limits.maxMemoryMb), '--timeout', String(args.limits.timeoutMs / 1000));
  return new Promise((resolve, reject) => {
    // The child dies with the thread that spawned it (PR_SET_PDEATHSIG): a conversion thread
    // terminated at its limits takes the native engine with it.
    const child = spawn(binary, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
    child.once('error', (err) => reject(new ConvertError('internal', `the native B-rep engine ${binary} could not start: ${err.message}`)));
    child.once('close', (code, signal) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      let report: NativeReport | undefined;
      try {
        report = JSON.parse(line) as NativeReport;
      } catch {
        report = undefined;
      }
      if (report?.ok && code === 0) return resolve(report);
      if (report && !report.ok && report.error) {
        return reject(new ConvertError(report.code && CODES.has(report.code) ? report.code : 'internal', report.error));
      }
      const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      const tail = stderr.trim().split('\n').slice(-3).join(' / ');
      reject(new ConvertError('crashed', `OpenCASCADE ${how} while converting the file${tail ? ` (${tail})` : ''}`));
    });
  });
}

/**
 * OpenCASCADE writes each colour as a material with glTF's default metal and roughness (1, 1:
 * a dark mirror in a viewer); the converter's other engines give CAD colours a matte plastic
 * look, seen from both sides (open shells), and an uncoloured face the default grey.
 */
function adoptMaterials(doc: Document): void {
  for (const material of doc.getRoot().listMaterials()) {
    material.setMetallicFactor(MATTE.metallic).setRoughnessFactor(MATTE.roughness).setDoubleSided(true);
  }
  const materials = new MaterialCache(doc);
  for (const mesh of doc.getRoot().listMeshes()) {
    for (const prim of mesh.listPrimitives()) if (!prim.getMaterial()) prim.setMaterial(materials.get(null));
  }
}

/**
 * The B-rep formats through the native engine: its GLB goes to a hidden file in the output
 * folder (the contract allows no writes elsewhere), is read back as a document and removed.
 */
export async function importOcctNative(input: ImportInput, quality: Quality, where: { path: string; outputDir: string; limits?: ConvertLimits }): Promise<Imported> {
  fs.mkdirSync(where.outputDir, { recursive: true });
  const output = path.join(where.outputDir, '.native.glb');
  try {
    const report = await runNative({ format: input.format, input: where.path, output, quality, limits: where.limits });
    // One line for the worker's log: where a slow conversion spent its time.
    process.stderr.write(
      `cadfleet-occt: ${report.parts} parts, ${report.triangles} triangles; read ${report.readSeconds} s, mesh ${report.meshSeconds} s, write ${report.writeSeconds} s; peak ${report.peakMb} MiB\n`,
    );
    const io = await gltfIO();
    const doc = await io.readBinary(new Uint8Array(await fs.promises.readFile(output)));
    adoptMaterials(doc);
    return { doc, units: 'millimeter' };
  } finally {
    fs.rmSync(output, { force: true });
  }
}
