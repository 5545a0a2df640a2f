import type { Document, Mesh, Node } from '@gltf-transform/core';
import { getGLPrimitiveCount } from '@gltf-transform/functions';
import type { Format } from './formats';
import type { Units } from './importers/index';
import type { Quality } from './types';

export interface Bounds {
  min: [number, number, number];
  max: [number, number, number];
}

export interface ManifestPart {
  /** Stable within one conversion; the streaming protocol and the viewer address parts by it. */
  id: string;
  name: string;
  parent: string | null;
  children: string[];
  /** Indices into the GLB's `meshes` this part draws (empty for an assembly). */
  meshes: number[];
  /** Index of the GLB node that places this part. */
  node: number;
  /** Dominant colour as sRGB hex, or null for an assembly. */
  color: string | null;
  /** Triangles drawn by this part and everything below it. */
  triangles: number;
  bbox: Bounds | null;
}

export interface Manifest {
  version: 1;
  source: { name: string; format: Format; bytes: number };
  quality: Quality;
  units: Units;
  triangles: number;
  bbox: Bounds | null;
  roots: string[];
  parts: ManifestPart[];
}

/** A manifest still holding live references: filled in before compression, indexed after. */
export interface DraftPart extends Omit<ManifestPart, 'meshes' | 'node'> {
  nodeRef: Node;
  meshRef: Mesh | null;
}

const linearToSrgb = (c: number): number => (c <= 0.0031308 ? c * 12.92 : 1.055 * c ** (1 / 2.4) - 0.055);
const hex = (rgb: readonly number[]): string =>
  '#' + rgb.slice(0, 3).map((c) => Math.round(Math.min(1, Math.max(0, linearToSrgb(c))) * 255).toString(16).padStart(2, '0')).join('');

export function meshTriangles(mesh: Mesh): number {
  let count = 0;
  for (const prim of mesh.listPrimitives()) {
    const mode = prim.getMode();
    // 4, 5, 6: TRIANGLES, TRIANGLE_STRIP, TRIANGLE_FAN.
    if (mode >= 4) count += getGLPrimitiveCount(prim);
  }
  return count;
}

function dominantColor(mesh: Mesh): string | null {
  let best: { triangles: number; color: number[] } | null = null;
  for (const prim of mesh.listPrimitives()) {
    const triangles = prim.getMode() >= 4 ? getGLPrimitiveCount(prim) : 0;
    const color = prim.getMaterial()?.getBaseColorFactor() ?? [1, 1, 1, 1];
    if (!best || triangles > best.triangles) best = { triangles, color };
  }
  return best ? hex(best.color) : null;
}

const finite = (b: Bounds): boolean => [...b.min, ...b.max].every(Number.isFinite);
/** Instance transforms leave float noise (189.99999999999994): a millionth of the unit is plenty. */
const tidy = (v: number): number => Math.round(v * 1e6) / 1e6 + 0;

type Box = { min: number[]; max: number[] };
const emptyBox = (): Box => ({ min: [Infinity, Infinity, Infinity], max: [-Infinity, -Infinity, -Infinity] });
const grow = (box: Box, x: number, y: number, z: number): void => {
  const p = [x, y, z];
  for (let i = 0; i < 3; i++) {
    if (p[i]! < box.min[i]!) box.min[i] = p[i]!;
    if (p[i]! > box.max[i]!) box.max[i] = p[i]!;
  }
};

/**
 * The world-space box of the triangles one node draws itself (not its children's). A node that
 * only moves its mesh (the instances of an assembly, mostly) adds its translation to the
 * accessors' own min and max; a rotated or scaled one transforms every vertex. Both exact.
 */
function ownBounds(node: Node): Box | null {
  const mesh = node.getMesh();
  if (!mesh) return null;
  const m = node.getWorldMatrix();
  const moveOnly = m[0] === 1 && m[1] === 0 && m[2] === 0 && m[4] === 0 && m[5] === 1 && m[6] === 0 && m[8] === 0 && m[9] === 0 && m[10] === 1;
  const box = emptyBox();
  for (const prim of mesh.listPrimitives()) {
    if (prim.getMode() < 4) continue;
    const position = prim.getAttribute('POSITION');
    if (!position || position.getCount() === 0) continue;
    if (moveOnly) {
      const lo = position.getMin([0, 0, 0]);
      const hi = position.getMax([0, 0, 0]);
      grow(box, lo[0]! + m[12], lo[1]! + m[13], lo[2]! + m[14]);
      grow(box, hi[0]! + m[12], hi[1]! + m[13], hi[2]! + m[14]);
      continue;
    }
    const v = [0, 0, 0];
    for (let i = 0, n = position.getCount(); i < n; i++) {
      position.getElement(i, v);
      const [x, y, z] = v as [number, number, number];
      grow(box, m[0] * x + m[4] * y + m[8] * z + m[12], m[1] * x + m[5] * y + m[9] * z + m[13], m[2] * x + m[6] * y + m[10] * z + m[14]);
    }
  }
  return box;
}

/** Walks the scene tree into parts; call on the uncompressed document (bounds need float positions). */
export function draftParts(doc: Document): { parts: DraftPart[]; roots: string[]; triangles: number } {
  const parts: DraftPart[] = [];
  // Each part's box is its own triangles' and its children's boxes: every vertex is read once.
  const boxes = new Map<DraftPart, Box>();
  const visit = (node: Node, parent: string | null): DraftPart => {
    const mesh = node.getMesh();
    const part: DraftPart = {
      id: `p${parts.length}`,
      name: node.getName() || mesh?.getName() || `part ${parts.length}`,
      parent,
      children: [],
      nodeRef: node,
      meshRef: mesh,
      color: mesh ? dominantColor(mesh) : null,
      triangles: mesh ? meshTriangles(mesh) : 0,
      bbox: null,
    };
    parts.push(part);
    const box = part.triangles > 0 ? (ownBounds(node) ?? emptyBox()) : emptyBox();
    for (const child of node.listChildren()) {
      const sub = visit(child, part.id);
      part.children.push(sub.id);
      part.triangles += sub.triangles;
      const childBox = boxes.get(sub);
      if (childBox) {
        grow(box, childBox.min[0]!, childBox.min[1]!, childBox.min[2]!);
        grow(box, childBox.max[0]!, childBox.max[1]!, childBox.max[2]!);
      }
    }
    if (part.triangles > 0) {
      const tidied: Bounds = { min: box.min.map(tidy) as Bounds['min'], max: box.max.map(tidy) as Bounds['max'] };
      boxes.set(part, box);
      part.bbox = finite(tidied) ? tidied : null;
    }
    return part;
  };
  const scene = doc.getRoot().getDefaultScene() ?? doc.getRoot().listScenes()[0];
  const rootParts = (scene?.listChildren() ?? []).map((node) => visit(node, null));
  return { parts, roots: rootParts.map((p) => p.id), triangles: rootParts.reduce((sum, p) => sum + p.triangles, 0) };
}

export function finishManifest(
  doc: Document,
  draft: { parts: DraftPart[]; roots: string[] },
  meta: { source: Manifest['source']; quality: Quality; units: Units },
): Manifest {
  const nodes = doc.getRoot().listNodes();
  const meshes = doc.getRoot().listMeshes();
  const parts: ManifestPart[] = draft.parts.map(({ nodeRef, meshRef, ...rest }) => ({
    ...rest,
    meshes: meshRef ? [meshes.indexOf(meshRef)] : [],
    node: nodes.indexOf(nodeRef),
  }));
  const byId = new Map(parts.map((p) => [p.id, p]));
  const rootParts = draft.roots.map((id) => byId.get(id)!);
  const boxes = rootParts.map((p) => p.bbox).filter((b): b is Bounds => b !== null);
  const bbox: Bounds | null = boxes.length
    ? {
        min: [0, 1, 2].map((i) => Math.min(...boxes.map((b) => b.min[i]!))) as Bounds['min'],
        max: [0, 1, 2].map((i) => Math.max(...boxes.map((b) => b.max[i]!))) as Bounds['max'],
      }
    : null;
  return {
    version: 1,
    source: meta.source,
    quality: meta.quality,
    units: meta.units,
    triangles: rootParts.reduce((sum, p) => sum + p.triangles, 0),
    bbox,
    roots: draft.roots,
    parts,
  };
}
