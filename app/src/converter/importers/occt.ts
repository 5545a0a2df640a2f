import { createRequire } from 'node:module';
import { Document, type Node } from '@gltf-transform/core';
import { ConvertError } from '../errors';
import type { Quality } from '../types';
import { addTriangles, MaterialCache, type Rgb } from './build';
import type { Imported, ImportInput } from './index';

interface OcctMesh {
  name?: string;
  color?: Rgb;
  brep_faces?: Array<{ first: number; last: number; color: Rgb | null }>;
  attributes: { position: { array: ArrayLike<number> }; normal?: { array: ArrayLike<number> } };
  index: { array: ArrayLike<number> };
}
interface OcctNode {
  name: string;
  meshes: number[];
  children: OcctNode[];
}
interface OcctResult {
  success: boolean;
  root?: OcctNode;
  meshes?: OcctMesh[];
}
interface OcctModule {
  ReadStepFile(content: Uint8Array, params: object | null): OcctResult;
  ReadIgesFile(content: Uint8Array, params: object | null): OcctResult;
  ReadBrepFile(content: Uint8Array, params: object | null): OcctResult;
}

/**
 * Tessellation per quality preset. Deflection relative to the model's size keeps small and
 * large models equally smooth; the angular limit keeps small radii round.
 */
export const OCCT_QUALITY: Readonly<Record<Quality, { linearDeflection: number; angularDeflection: number }>> = {
  coarse: { linearDeflection: 0.005, angularDeflection: 0.8 },
  normal: { linearDeflection: 0.001, angularDeflection: 0.5 },
  fine: { linearDeflection: 0.0002, angularDeflection: 0.2 },
};

let modulePromise: Promise<OcctModule> | undefined;

/** Loads the WebAssembly module once per thread; the warm mode keeps it for later jobs. */
export function loadOcct(): Promise<OcctModule> {
  if (!modulePromise) {
    const require = createRequire(import.meta.url);
    const factory = require('occt-import-js') as () => Promise<OcctModule>;
    modulePromise = factory();
  }
  return modulePromise;
}

export async function importOcct(input: ImportInput, quality: Quality): Promise<Imported> {
  const occt = await loadOcct();
  const params = { linearUnit: 'millimeter', linearDeflectionType: 'bounding_box_ratio', ...OCCT_QUALITY[quality] };
  const read =
    input.format === 'step' ? occt.ReadStepFile : input.format === 'iges' ? occt.ReadIgesFile : occt.ReadBrepFile;
  const result = read.call(occt, input.content, params);
  if (!result.success || !result.root || !result.meshes) {
    throw new ConvertError('corrupt', `OpenCASCADE could not read the ${input.format.toUpperCase()} file (it is damaged or not a ${input.format.toUpperCase()} file)`);
  }
  if (result.meshes.length === 0) {
    const text = Buffer.from(input.content.buffer, input.content.byteOffset, input.content.byteLength).toString('latin1');
    if (input.format === 'step' && /DOCUMENT_FILE|EXTERNALLY_DEFINED/i.test(text)) {
      throw new ConvertError(
        'unsupported',
        'the STEP file is an assembly whose parts live in other files (external references); export it as a single STEP file and upload that',
      );
    }
    throw new ConvertError('corrupt', `the ${input.format.toUpperCase()} file holds no solid or surface geometry`);
  }

  const doc = new Document();
  doc.createBuffer();
  const materials = new MaterialCache(doc);
  const meshes = result.meshes;

  const partNode = (index: number): Node => {
    const source = meshes[index]!;
    const mesh = doc.createMesh(source.name ?? `part-${index}`);
    const positions = Float32Array.from(source.attributes.position.array);
    const normals = source.attributes.normal ? Float32Array.from(source.attributes.normal.array) : undefined;
    const all = Uint32Array.from(source.index.array);
    // Split the triangles by B-rep face colour: each colour becomes one primitive and material.
    const byColor = new Map<string, { color: Rgb | null; triangles: number[] }>();
    const faces = source.brep_faces?.length ? source.brep_faces : [{ first: 0, last: all.length / 3 - 1, color: null }];
    for (const face of faces) {
      const color = face.color ?? source.color ?? null;
      const key = color ? color.join(',') : 'none';
      let group = byColor.get(key);
      if (!group) byColor.set(key, (group = { color, triangles: [] }));
      for (let t = face.first; t <= face.last; t++) group.triangles.push(t);
    }
    for (const { color, triangles } of byColor.values()) {
      const indices = new Uint32Array(triangles.length * 3);
      triangles.forEach((t, i) => indices.set(all.subarray(t * 3, t * 3 + 3), i * 3));
      if (indices.length > 0) addTriangles(doc, mesh, { positions, normals, indices }, materials.get(color));
    }
    return doc.createNode(source.name ?? `part-${index}`).setMesh(mesh);
  };

  const walk = (source: OcctNode, depth: number): Node => {
    const node = doc.createNode(source.name || (depth === 0 ? 'model' : 'assembly'));
    for (const index of source.meshes) node.addChild(partNode(index));
    for (const child of source.children) node.addChild(walk(child, depth + 1));
    return node;
  };
  doc.createScene('model').addChild(walk(result.root, 0));
  return { doc, units: 'millimeter' };
}
