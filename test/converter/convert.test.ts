import { createRequire } from 'node:module';
import fs from 'node:fs';
import { NodeIO } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { getGLPrimitiveCount } from '@gltf-transform/functions';
import { describe, expect, it } from 'vitest';
import { OCCT_QUALITY } from '../../app/src/converter/importers/occt';
import type { Manifest } from '../../app/src/converter/manifest';
import { convertSample, readManifest, validateGlb } from '../helpers/convert';
import { assimpSample, cax, CAX_IF_STEP, occtSample, stlSample } from '../helpers/samples';

const require = createRequire(import.meta.url);

/** Triangles and parts as occt-import-js itself reports them, read in this process: the oracle. */
async function occtReference(file: string, format: 'step' | 'iges' | 'brep'): Promise<{ triangles: number; parts: number }> {
  const occt = await (require('occt-import-js') as () => Promise<Record<string, (c: Uint8Array, p: object) => { meshes: Array<{ index: { array: number[] } }> }>>)();
  const read = { step: occt.ReadStepFile!, iges: occt.ReadIgesFile!, brep: occt.ReadBrepFile! }[format];
  const result = read(new Uint8Array(fs.readFileSync(file)), { linearUnit: 'millimeter', linearDeflectionType: 'bounding_box_ratio', ...OCCT_QUALITY.normal });
  return { triangles: result.meshes.reduce((sum, m) => sum + m.index.array.length / 3, 0), parts: result.meshes.length };
}

/** Triangles of every mesh instance in a glTF, counted with gltf-transform straight from the source file. */
async function gltfInstanceTriangles(file: string): Promise<number> {
  const doc = await new NodeIO().registerExtensions(ALL_EXTENSIONS).read(file);
  let total = 0;
  for (const node of doc.getRoot().listNodes()) {
    for (const prim of node.getMesh()?.listPrimitives() ?? []) if (prim.getMode() >= 4) total += getGLPrimitiveCount(prim);
  }
  return total;
}

/** Facets of an STL counted from the file itself: the header of a binary one, `facet` lines of an ASCII one. */
function stlFacets(file: string): number {
  const buf = fs.readFileSync(file);
  if (buf.subarray(0, 5).toString() === 'solid' && buf.includes('facet')) return (buf.toString('latin1').match(/^\s*facet\s/gm) ?? []).length;
  return buf.readUInt32LE(80);
}

async function expectValidModel(input: string, extra: string[] = []): Promise<{ manifest: Manifest; run: Awaited<ReturnType<typeof convertSample>> }> {
  const run = await convertSample(input, extra);
  expect(run.code, run.stderr).toBe(0);
  expect(run.result.ok).toBe(true);
  const validation = await validateGlb(`${run.outDir}/model.glb`);
  expect(validation.numErrors, JSON.stringify(validation.messages.slice(0, 3))).toBe(0);
  expect(validation.info.extensionsUsed).toEqual(expect.arrayContaining(['EXT_meshopt_compression', 'KHR_mesh_quantization']));
  const manifest = readManifest(run.outDir);
  expect(manifest.triangles).toBe(run.result.stats.triangles);
  expect(manifest.parts.filter((p) => p.meshes.length > 0)).toHaveLength(run.result.stats.parts);
  expect(run.result.stats.outputBytes).toBe(fs.statSync(`${run.outDir}/model.glb`).size);
  // Geometry goes to files only, never to stdout.
  expect(run.stdout).toBe('');
  return { manifest, run };
}

describe('B-rep formats through OpenCASCADE', () => {
  it.each(CAX_IF_STEP)('converts the CAx-IF STEP file %s with every triangle and part', async (name) => {
    const file = cax(name);
    const { manifest, run } = await expectValidModel(file);
    const reference = await occtReference(file, 'step');
    expect(run.result.stats.triangles).toBe(reference.triangles);
    expect(run.result.stats.parts).toBe(reference.parts);
    expect(manifest.units).toBe('millimeter');
    expect(manifest.source).toMatchObject({ format: 'step', bytes: fs.statSync(file).size });
  });

  it('keeps the as1 assembly tree: 18 parts under rod, plate and bracket assemblies, coloured', async () => {
    const { manifest } = await expectValidModel(cax('as1-oc-214.stp'));
    expect(manifest.parts.filter((p) => p.meshes.length > 0)).toHaveLength(18);
    const names = manifest.parts.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['as1', 'rod-assembly', 'l-bracket-assembly', 'plate', 'nut', 'bolt', 'rod']));
    const nut = manifest.parts.find((p) => p.name === 'nut')!;
    expect(nut.color).toBe('#ff0000');
    const rodAssembly = manifest.parts.find((p) => p.name === 'rod-assembly')!;
    expect(rodAssembly.children.map((id) => manifest.parts.find((p) => p.id === id)!.name).sort()).toEqual(['nut', 'nut', 'rod']);
    // A parent's triangles are its children's, and the model box holds every part's box.
    expect(rodAssembly.triangles).toBe(rodAssembly.children.reduce((s, id) => s + manifest.parts.find((p) => p.id === id)!.triangles, 0));
    for (const part of manifest.parts.filter((p) => p.bbox)) {
      for (let i = 0; i < 3; i++) {
        expect(part.bbox!.min[i]).toBeGreaterThanOrEqual(manifest.bbox!.min[i]! - 1e-6);
        expect(part.bbox!.max[i]).toBeLessThanOrEqual(manifest.bbox!.max[i]! + 1e-6);
      }
    }
    expect(manifest.bbox).toEqual({ min: [-10, 0, -4], max: [190, 150, 80] });
  });

  it('tessellates more finely at each quality step', async () => {
    const file = cax('as1-oc-214.stp');
    const counts = [];
    for (const quality of ['coarse', 'normal', 'fine']) {
      const { manifest } = await expectValidModel(file, ['--quality', quality]);
      expect(manifest.quality).toBe(quality);
      counts.push(manifest.triangles);
    }
    expect(counts[0]).toBeLessThan(counts[1]!);
    expect(counts[1]).toBeLessThan(counts[2]!);
  });

  it('converts IGES', async () => {
    const { run } = await expectValidModel(occtSample('cube-10x10mm/Cube 10x10.igs'));
    expect(run.result.stats).toMatchObject({ triangles: 12, parts: 1 });
  });

  it('converts BREP', async () => {
    const file = sample('node_modules/occt-import-js/test/testfiles/cax-if-brep/as1_pe_203.brep');
    const { run } = await expectValidModel(file);
    expect(run.result.stats).toMatchObject(await occtReference(file, 'brep'));
    expect(run.result.stats.parts).toBe(18);
  });
});

describe('mesh formats through assimp', () => {
  it.each([
    ['binary STL', () => stlSample('WALLY_1plate.stl')],
    ['ASCII STL', () => stlSample('002.STL')],
    ['large binary STL', () => stlSample('Pterosaur_FDM.stl')],
  ])('converts %s with every facet', async (_label, file) => {
    const input = file();
    const { run } = await expectValidModel(input);
    expect(run.result.stats).toMatchObject({ triangles: stlFacets(input), parts: 1 });
  });

  it.each([
    ['OBJ with its MTL', 'OBJ/cube_usemtl.obj', 12, 1],
    ['OBJ with groups and textures', 'OBJ/spider.obj', 1368, 19],
    ['PLY', 'PLY/Wuson.ply', 3732, 1],
    ['OFF', 'OFF/Cube.off', 12, 1],
    ['FBX', 'FBX/box.fbx', 12, 1],
    ['DAE (the COLLADA duck)', 'Collada/duck.dae', 4212, 1],
    ['glTF with an external buffer', 'glTF2/BoxTextured-glTF/BoxTextured.gltf', 12, 1],
  ])('converts %s', async (_label, file, triangles, parts) => {
    const { run } = await expectValidModel(assimpSample(file));
    expect(run.result.stats).toMatchObject({ triangles, parts });
  });

  it('converts a GLB, keeping every mesh instance', async () => {
    const file = assimpSample('glTF2/2CylinderEngine-glTF-Binary/2CylinderEngine.glb');
    const { run } = await expectValidModel(file);
    expect(run.result.stats.triangles).toBe(await gltfInstanceTriangles(file));
    expect(run.result.stats.outputBytes).toBeLessThan(fs.statSync(file).size / 2);
  });

  it('converts 3DS', async () => {
    const { run } = await expectValidModel(assimpSample('3DS/fels.3ds'));
    expect(run.result.stats.triangles).toBeGreaterThan(0);
  });
});

describe('IFC through web-ifc', () => {
  it('converts the FZK house with its building elements grouped by IFC type', async () => {
    const { manifest, run } = await expectValidModel(assimpSample('IFC/AC14-FZK-Haus.ifc'));
    expect(manifest.units).toBe('meter');
    expect(run.result.stats.parts).toBe(110);
    const groups = manifest.parts.filter((p) => p.parent === manifest.roots[0]).map((p) => p.name);
    expect(groups).toEqual(expect.arrayContaining(['IfcSlab', 'IfcWindow', 'IfcDoor', 'IfcWallStandardCase']));
    expect(manifest.parts.map((p) => p.name)).toContain('Bodenplatte');
    // A house is metres across, not millimetres or kilometres.
    const size = manifest.bbox!.max.map((v, i) => v - manifest.bbox!.min[i]!);
    expect(Math.max(...size)).toBeGreaterThan(5);
    expect(Math.max(...size)).toBeLessThan(50);
  });
});

function sample(file: string): string {
  if (!fs.existsSync(file)) throw new Error(`sample ${file} is missing; run npm ci`);
  return file;
}
