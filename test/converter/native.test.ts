// The native B-rep engine (app/native/cadfleet-occt.cpp) against the WebAssembly engine it
// replaced, and on its own: instances kept as instances, its own limits, and no process left
// behind when the conversion thread is stopped.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { NodeIO } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { MeshoptDecoder } from 'meshoptimizer';
import { describe, expect, it } from 'vitest';
import { createConverter } from '../../app/src/converter/index';
import { nativeBinary, runNative } from '../../app/src/converter/importers/occt-native';
import type { Manifest, ManifestPart } from '../../app/src/converter/manifest';
import { convertSample, readManifest, tempDir } from '../helpers/convert';
import { assembly } from '../helpers/assembly';
import { assimpSample, cax, CAX_IF_STEP } from '../helpers/samples';


/** The converter's colour for a part with none (build.ts: DEFAULT_COLOR). */
const DEFAULT_GREY = '#b3b3b8';
const srgbToLinear = (c: number): number => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
const channels = (hex: string): number[] => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);

/** Each drawing part's path of assembly names from its root, a part repeated under itself counted once. */
function leafPaths(manifest: Manifest): Map<ManifestPart, string[]> {
  const byId = new Map(manifest.parts.map((p) => [p.id, p]));
  const paths = new Map<ManifestPart, string[]>();
  for (const part of manifest.parts.filter((p) => p.meshes.length > 0)) {
    const names: string[] = [];
    for (let p: ManifestPart | undefined = part; p; p = p.parent ? byId.get(p.parent) : undefined) names.unshift(p.name);
    paths.set(part, names.filter((name, i) => name !== names[i - 1]));
  }
  return paths;
}

const isSubsequence = (short: string[], long: string[]): boolean => {
  let i = 0;
  for (const name of long) if (name === short[i]) i++;
  return i === short.length;
};

describe('the native B-rep engine', () => {
  it('is built, and refuses bad arguments with its usage', () => {
    const binary = nativeBinary();
    expect(binary, 'npm run build builds dist/native/cadfleet-occt').toBeTruthy();
    const r = spawnSync(binary!, ['--format', 'dwg', '--input', 'x', '--output', 'y'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--format must be step, iges or brep[\s\S]*usage: cadfleet-occt/);
  });

  it.each(CAX_IF_STEP)('gives %s the parts, names, tree and triangles the WebAssembly engine gave, in the file\'s own colours', async (name) => {
    const file = cax(name);
    const [native, wasm] = await Promise.all([convertSample(file), convertSample(file, [], { CADFLEET_OCCT_ENGINE: 'wasm' })]);
    expect(native.result.ok, native.result.error).toBe(true);
    expect(wasm.result.ok, wasm.result.error).toBe(true);
    expect(native.result.stats.triangles).toBe(wasm.result.stats.triangles);
    expect(native.result.stats.parts).toBe(wasm.result.stats.parts);
    const after = leafPaths(readManifest(native.outDir));
    const before = leafPaths(readManifest(wasm.outDir));
    const leaves = (paths: Map<ManifestPart, string[]>): string[] => [...paths.keys()].map((p) => `${p.name} ${p.triangles}`).sort();
    expect(leaves(after)).toEqual(leaves(before));
    // The tree: every assembly a part was under before, it is under now, in the same order (the
    // WebAssembly engine added a root named "model" and dropped some sub-assembly levels).
    const unmatched = [...before.values()].map((p) => p.filter((n) => n !== 'model'));
    for (const path of after.values()) {
      const at = unmatched.findIndex((old) => isSubsequence(old, path));
      expect(at, `${path.join(' / ')} is under the assemblies it was under`).toBeGreaterThanOrEqual(0);
      unmatched.splice(at, 1);
    }
    // Colours: OpenCASCADE reads a STEP colour as sRGB and stores it linear; occt-import-js hands
    // out the linear values, which the old engine took for sRGB, darkening every colour once more.
    const oldColour = new Map([...before.keys()].map((p) => [`${p.name} ${p.triangles}`, p.color!]));
    // A part the file gives no colour has the converter's grey from both engines.
    for (const part of after.keys()) {
      const was = oldColour.get(`${part.name} ${part.triangles}`)!;
      if (part.color === DEFAULT_GREY) expect(was).toBe(DEFAULT_GREY);
      else channels(part.color!).forEach((c, i) => expect(Math.abs(srgbToLinear(c) - channels(was)[i]!)).toBeLessThan(2.5 / 255));
    }
  });

  it('reads a 4 MB IFC file named .stp whole, as IFC, though a STEP name sends only a sample to the format check', async () => {
    const named = path.join(tempDir(), 'house.stp');
    fs.copyFileSync(assimpSample('IFC/AC14-FZK-Haus.ifc'), named);
    const [run, asIfc] = await Promise.all([convertSample(named), convertSample(assimpSample('IFC/AC14-FZK-Haus.ifc'))]);
    expect(run.result.ok, run.result.error).toBe(true);
    expect(readManifest(run.outDir).source).toMatchObject({ name: 'house.stp', format: 'ifc' });
    // All of it: the same house as the file under its own name.
    expect(run.result.stats).toMatchObject({ triangles: asIfc.result.stats.triangles, parts: asIfc.result.stats.parts });
  });

  it('shows a STEP colour as the file states it', async () => {
    // sg1-c5-214.stp: COLOUR_RGB('Colour',0.827450980392,0.698039215686,0.490196078431).
    const run = await convertSample(cax('sg1-c5-214.stp'));
    expect(readManifest(run.outDir).parts.find((p) => p.meshes.length)!.color).toBe('#d3b27d');
  });

  it('keeps a part placed many times as one mesh: 64 placements cost about one part', async () => {
    const many = await convertSample(assembly(64, true));
    const one = await convertSample(assembly(1, true));
    expect(many.result.ok, many.result.error).toBe(true);
    expect(one.result.ok, one.result.error).toBe(true);
    await MeshoptDecoder.ready;
    const io = new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({ 'meshopt.decoder': MeshoptDecoder });
    const doc = await io.read(path.join(many.outDir, 'model.glb'));
    const placed = doc.getRoot().listNodes().filter((n) => n.getMesh());
    expect(placed.length).toBe(64 * one.result.stats.parts);
    const meshes = new Set(placed.map((n) => n.getMesh()!));
    expect(meshes.size).toBe(one.result.stats.parts);
    // The deflection is relative to the model's size: the grid's part is meshed coarser than the
    // part alone, but every placement draws the same mesh.
    const perPlacement = [...meshes].reduce((sum, mesh) => sum + mesh.listPrimitives().reduce((s, p) => s + p.getIndices()!.getCount() / 3, 0), 0);
    expect(many.result.stats.triangles).toBe(64 * perPlacement);
    expect(many.result.stats.outputBytes).toBeLessThan(2 * one.result.stats.outputBytes);
    // Each placement has its own box in the manifest: the grid's 8 columns 60 mm apart.
    const manifest = readManifest(many.outDir);
    expect(manifest.bbox!.max[0] - manifest.bbox!.min[0]).toBeCloseTo(7 * 60 + 40, 3);
  });

  it('converts an assembly of distinct parts, each part where the file puts it', async () => {
    const run = await convertSample(assembly(16, false));
    expect(run.result.ok, run.result.error).toBe(true);
    const manifest = readManifest(run.outDir);
    const drawn = manifest.parts.filter((p) => p.meshes.length > 0);
    expect(drawn).toHaveLength(32);
    const corners = new Set(drawn.map((p) => `${Math.round(p.bbox!.min[0])},${Math.round(p.bbox!.min[1])}`));
    // 16 plates at 60 mm steps on a 4 x 4 grid, and a torus (its own solid) over each.
    expect([...corners].filter((c) => /^(0|60|120|180),(0|60|120|180)$/.test(c))).toHaveLength(16);
  });

  it('stops itself over its memory limit and its time limit, saying which', async () => {
    const file = assembly(36, false);
    const output = path.join(tempDir(), 'out.glb');
    await expect(runNative({ format: 'step', input: file, output, quality: 'normal', limits: { maxMemoryMb: 40, timeoutMs: 600_000 } })).rejects.toMatchObject({
      code: 'memory',
      message: expect.stringMatching(/over the limit of 40 MiB, and was stopped; try --quality coarse or raise the memory limit/),
    });
    await expect(runNative({ format: 'step', input: file, output, quality: 'fine', limits: { maxMemoryMb: 8192, timeoutMs: 100 } })).rejects.toMatchObject({
      code: 'timeout',
      message: expect.stringMatching(/longer than the limit of 0.1 s/),
    });
    expect(fs.existsSync(output)).toBe(false);
  });

  it('says what was wrong with a file OpenCASCADE cannot read, and with a missing engine', async () => {
    const dir = tempDir();
    const bad = path.join(dir, 'bad.brep');
    fs.writeFileSync(bad, 'CASCADE Topology V1, (c) Matra-Datavision\nLocations 3\n1\n garbage');
    await expect(runNative({ format: 'brep', input: bad, output: path.join(dir, 'o.glb'), quality: 'normal' })).rejects.toMatchObject({
      code: 'corrupt',
      message: expect.stringMatching(/could not read the BREP file \(it is damaged or not a BREP file\)/),
    });
    const missing = await convertSample(cax('sg1-c5-214.stp'), [], { CADFLEET_OCCT_BIN: path.join(dir, 'no-such-engine') });
    expect(missing.result).toMatchObject({ ok: false, code: 'internal', error: expect.stringMatching(/could not start/) });
  });

  it('leaves no engine running when a warm pool process stops the conversion at its time limit', async () => {
    const file = assembly(100, false);
    // The pool process lives on; only its conversion thread is stopped, and the engine with it.
    const converter = createConverter({ mode: 'pool', poolSize: 1, onOutput: () => undefined });
    const running = (): string => {
      try {
        return execFileSync('pgrep', ['-f', file], { encoding: 'utf8' });
      } catch {
        return '';
      }
    };
    try {
      const result = await converter.convert({ input: file, outputDir: path.join(tempDir(), 'out'), quality: 'fine' }, { timeoutMs: 1500, maxMemoryMb: 8192 });
      expect(result).toMatchObject({ ok: false, code: 'timeout' });
      for (let i = 0; i < 50 && running(); i++) await new Promise((r) => setTimeout(r, 100));
      expect(running()).toBe('');
    } finally {
      await converter.close();
    }
  });
});
