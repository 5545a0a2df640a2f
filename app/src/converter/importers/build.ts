import { type Document, type Material, type Mesh } from '@gltf-transform/core';

export interface TriangleSet {
  positions: Float32Array;
  normals?: Float32Array;
  indices: Uint32Array;
}

/** sRGB components in 0..1, as CAD formats store colours. */
export type Rgb = readonly [number, number, number];

const DEFAULT_COLOR: Rgb = [0.7, 0.7, 0.72];

/** How a CAD colour looks: matte plastic, not metal. */
export const MATTE = { metallic: 0.1, roughness: 0.6 } as const;

const srgbToLinear = (c: number): number => (c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);

/**
 * Shares one material per distinct colour. glTF base colours are linear, CAD colours sRGB:
 * the conversion keeps what a viewer shows equal to what the CAD tool showed.
 */
export class MaterialCache {
  private readonly byKey = new Map<string, Material>();

  constructor(private readonly doc: Document) {}

  get(color: Rgb | null | undefined, alpha = 1): Material {
    const rgb = color ?? DEFAULT_COLOR;
    const key = `${rgb.map((c) => c.toFixed(4)).join(',')},${alpha.toFixed(3)}`;
    let material = this.byKey.get(key);
    if (!material) {
      material = this.doc
        .createMaterial(`color-${this.byKey.size}`)
        .setBaseColorFactor([srgbToLinear(rgb[0]), srgbToLinear(rgb[1]), srgbToLinear(rgb[2]), alpha])
        .setMetallicFactor(MATTE.metallic)
        .setRoughnessFactor(MATTE.roughness)
        .setDoubleSided(true);
      if (alpha < 1) material.setAlphaMode('BLEND');
      this.byKey.set(key, material);
    }
    return material;
  }
}

/**
 * Adds a triangle primitive holding only the vertices its indices use, so that one mesh split
 * by face colour does not carry the whole vertex array in every primitive.
 */
export function addTriangles(doc: Document, mesh: Mesh, set: TriangleSet, material: Material): void {
  const remap = new Map<number, number>();
  const indices = new Uint32Array(set.indices.length);
  for (let i = 0; i < set.indices.length; i++) {
    const old = set.indices[i]!;
    let next = remap.get(old);
    if (next === undefined) {
      next = remap.size;
      remap.set(old, next);
    }
    indices[i] = next;
  }
  const positions = new Float32Array(remap.size * 3);
  const normals = set.normals ? new Float32Array(remap.size * 3) : undefined;
  for (const [old, next] of remap) {
    positions.set(set.positions.subarray(old * 3, old * 3 + 3), next * 3);
    if (normals && set.normals) normals.set(set.normals.subarray(old * 3, old * 3 + 3), next * 3);
  }
  const buffer = doc.getRoot().listBuffers()[0] ?? doc.createBuffer();
  const prim = doc
    .createPrimitive()
    .setMaterial(material)
    .setIndices(doc.createAccessor().setType('SCALAR').setArray(indices).setBuffer(buffer))
    .setAttribute('POSITION', doc.createAccessor().setType('VEC3').setArray(positions).setBuffer(buffer));
  if (normals) {
    prim.setAttribute('NORMAL', doc.createAccessor().setType('VEC3').setArray(normals).setBuffer(buffer));
  }
  mesh.addPrimitive(prim);
}
