import { type Document, NodeIO } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { dedup, meshopt, prune, weld } from '@gltf-transform/functions';
import { MeshoptEncoder } from 'meshoptimizer';
import type { Quality } from './types';

/** Position precision: 14 bits over each mesh's own box is about 1/16000 of the part's size. */
const POSITION_BITS: Readonly<Record<Quality, number>> = { coarse: 12, normal: 14, fine: 16 };

let ioPromise: Promise<NodeIO> | undefined;

export function gltfIO(): Promise<NodeIO> {
  if (!ioPromise) {
    ioPromise = MeshoptEncoder.ready.then(() =>
      new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({ 'meshopt.encoder': MeshoptEncoder }),
    );
  }
  return ioPromise;
}

/**
 * Shares identical data and merges identical vertices; leaves the scene graph's meaning alone.
 * `weld: false` for a tessellator's own indexed output (OpenCASCADE's), where welding finds
 * nothing to merge (measured: 0.04 % smaller output, a third of this step's time).
 */
export async function cleanUp(doc: Document, { weld: toWeld = true }: { weld?: boolean } = {}): Promise<void> {
  // Animations and skins mean nothing to a CAD viewer and break per-part bounds.
  for (const animation of doc.getRoot().listAnimations()) animation.dispose();
  for (const skin of doc.getRoot().listSkins()) skin.dispose();
  await doc.transform(dedup(), ...(toWeld ? [weld()] : []), prune({ keepLeaves: false }));
}

/** Quantizes and meshopt-compresses the geometry (EXT_meshopt_compression + KHR_mesh_quantization). */
export async function compress(doc: Document, quality: Quality): Promise<Uint8Array> {
  await MeshoptEncoder.ready;
  await doc.transform(
    meshopt({ encoder: MeshoptEncoder, level: 'medium', quantizePosition: POSITION_BITS[quality], quantizationVolume: 'mesh' }),
  );
  const io = await gltfIO();
  return io.writeBinary(doc);
}
