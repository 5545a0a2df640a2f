// A stream pack: a converted model (model.glb + manifest.json) cut into the geometry frames the
// streamer sends, in the order it sends them. Built once per model on a streamer and kept in its
// disk cache, so a session only slices a buffer.
//
// Order: parts with geometry, largest first (bounding-box diagonal, then triangles), so the
// shapes that define what the model looks like arrive first. Parts bigger than the chunk budget
// are split into frames of at most `chunkTriangles` triangles, cut along a Morton curve through
// the triangles' centroids so that each frame is a compact piece of the surface.
import { NodeIO, type Primitive } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { MeshoptDecoder, MeshoptEncoder } from 'meshoptimizer';
import type { Manifest, ManifestPart } from '../converter/manifest';
import { COMPONENT_BYTES, type ComponentType, type FrameHeader, type FramePrimitive, type VertexSection, encodeFrame } from './protocol';

/** Bump when the frame layout or the ordering changes: cached packs of another format are rebuilt. */
export const PACK_FORMAT = 1;

export interface PackFrame {
  part: string;
  chunk: number;
  chunks: number;
  triangles: number;
  offset: number;
  length: number;
}

export interface PackIndex {
  format: number;
  chunkTriangles: number;
  manifest: Manifest;
  /** Geometry parts in streaming order. */
  order: string[];
  chunks: Record<string, number>;
  /** In streaming order; a part's frames are consecutive. */
  frames: PackFrame[];
  bytes: number;
}

export interface Pack {
  index: PackIndex;
  /** Every frame, back to back: frame i is data.subarray(frames[i].offset, offset + length). */
  data: Buffer;
}

type TypedArray = Int8Array | Uint8Array | Int16Array | Uint16Array | Uint32Array | Float32Array;

interface Attribute {
  array: TypedArray;
  itemSize: number;
  type: ComponentType;
  normalized: boolean;
}

interface Piece {
  color: [number, number, number, number];
  doubleSided: boolean;
  position: Attribute;
  normal: Attribute | null;
  /** Triangle list. */
  indices: Uint32Array;
}

interface Slice {
  piece: Piece;
  /** Triangle list into piece's vertices. */
  indices: Uint32Array;
}

const componentType = (array: TypedArray): ComponentType => {
  if (array instanceof Int8Array) return 'i8';
  if (array instanceof Uint8Array) return 'u8';
  if (array instanceof Int16Array) return 'i16';
  if (array instanceof Uint16Array) return 'u16';
  if (array instanceof Uint32Array) return 'u32';
  return 'f32';
};

const ARRAYS: Record<ComponentType, new (n: number) => TypedArray> = {
  i8: Int8Array,
  u8: Uint8Array,
  i16: Int16Array,
  u16: Uint16Array,
  u32: Uint32Array,
  f32: Float32Array,
};

let io: NodeIO | undefined;
async function reader(): Promise<NodeIO> {
  await Promise.all([MeshoptDecoder.ready, MeshoptEncoder.ready]);
  io ??= new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({ 'meshopt.decoder': MeshoptDecoder });
  return io;
}

const diagonal = (p: ManifestPart): number =>
  p.bbox ? Math.hypot(p.bbox.max[0] - p.bbox.min[0], p.bbox.max[1] - p.bbox.min[1], p.bbox.max[2] - p.bbox.min[2]) : 0;
const idNumber = (id: string): number => Number(id.replace(/^\D+/, '')) || 0;

/** Streaming order of the parts that have geometry: largest first. */
export function streamingOrder(manifest: Pick<Manifest, 'parts'>): ManifestPart[] {
  return manifest.parts
    .filter((p) => p.meshes.length > 0)
    .sort((a, b) => diagonal(b) - diagonal(a) || b.triangles - a.triangles || idNumber(a.id) - idNumber(b.id));
}

function triangleList(prim: Primitive): Uint32Array | undefined {
  const mode = prim.getMode();
  const count = prim.getAttribute('POSITION')?.getCount() ?? 0;
  const source = prim.getIndices()?.getArray();
  const at = (i: number): number => (source ? source[i]! : i);
  const n = source ? source.length : count;
  if (mode === 4) {
    const out = new Uint32Array(n - (n % 3));
    for (let i = 0; i < out.length; i++) out[i] = at(i);
    return out;
  }
  if (mode === 5 || mode === 6) {
    // TRIANGLE_STRIP and TRIANGLE_FAN become lists (rare in converter output).
    const tris = Math.max(0, n - 2);
    const out = new Uint32Array(tris * 3);
    for (let i = 0; i < tris; i++) {
      const [a, b, c] = mode === 6 ? [at(0), at(i + 1), at(i + 2)] : i % 2 ? [at(i + 1), at(i), at(i + 2)] : [at(i), at(i + 1), at(i + 2)];
      out.set([a, b, c], i * 3);
    }
    return out;
  }
  return undefined; // points and lines carry no surface
}

function attribute(prim: Primitive, semantic: string): Attribute | null {
  const accessor = prim.getAttribute(semantic);
  const array = accessor?.getArray() as TypedArray | null | undefined;
  if (!accessor || !array) return null;
  return { array, itemSize: accessor.getElementSize(), type: componentType(array), normalized: accessor.getNormalized() };
}

const spread10 = (v: number): number => {
  v = (v | (v << 16)) & 0x030000ff;
  v = (v | (v << 8)) & 0x0300f00f;
  v = (v | (v << 4)) & 0x030c30c3;
  return (v | (v << 2)) & 0x09249249;
};

/** Reorders a triangle list along a Morton curve through the centroids. */
export function spatialOrder(indices: Uint32Array, position: Attribute): Uint32Array {
  const tris = indices.length / 3;
  const LIMIT = 2 ** 23;
  if (tris < 2 || tris >= LIMIT) return indices;
  const p = position.array;
  const s = position.itemSize;
  const min = [Infinity, Infinity, Infinity];
  const max = [-Infinity, -Infinity, -Infinity];
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i]! * s;
    for (let k = 0; k < 3; k++) {
      const x = p[v + k]!;
      if (x < min[k]!) min[k] = x;
      if (x > max[k]!) max[k] = x;
    }
  }
  const scale = [0, 1, 2].map((k) => (max[k]! > min[k]! ? 1023 / (max[k]! - min[k]!) : 0));
  const keys = new Float64Array(tris);
  for (let t = 0; t < tris; t++) {
    const q = [0, 0, 0];
    for (let k = 0; k < 3; k++) {
      const c = (p[indices[t * 3]! * s + k]! + p[indices[t * 3 + 1]! * s + k]! + p[indices[t * 3 + 2]! * s + k]!) / 3;
      q[k] = Math.min(1023, Math.max(0, Math.floor((c - min[k]!) * scale[k]!)));
    }
    const code = (spread10(q[0]!) | (spread10(q[1]!) << 1) | (spread10(q[2]!) << 2)) >>> 0;
    keys[t] = code * LIMIT + t;
  }
  keys.sort();
  const out = new Uint32Array(indices.length);
  for (let i = 0; i < tris; i++) {
    const t = keys[i]! % LIMIT;
    out[i * 3] = indices[t * 3]!;
    out[i * 3 + 1] = indices[t * 3 + 1]!;
    out[i * 3 + 2] = indices[t * 3 + 2]!;
  }
  return out;
}

/**
 * Triangles allowed in the model's frame number `frame`: the first frames are small (an eighth
 * of the cap, at least 256 triangles) and double up to the cap, so the first geometry of a big
 * part reaches a viewer on a slow link soon, and later frames carry less overhead.
 */
export function frameBudget(cap: number, frame: number): number {
  const start = Math.max(Math.min(256, cap), Math.floor(cap / 8));
  return Math.min(cap, start * 2 ** Math.min(frame, 30));
}

/** Groups a part's triangles into frames; `budget(i)` caps the part's i-th frame. */
function chunkPart(pieces: Piece[], budget: (i: number) => number): Slice[][] {
  const frames: Slice[][] = [];
  let current: Slice[] = [];
  let count = 0;
  const room = (): number => budget(frames.length) - count;
  const flush = (): void => {
    if (!current.length) return;
    frames.push(current);
    current = [];
    count = 0;
  };
  for (const piece of pieces) {
    const tris = piece.indices.length / 3;
    if (tris <= room()) {
      current.push({ piece, indices: piece.indices });
      count += tris;
      continue;
    }
    if (tris <= budget(frames.length + (current.length ? 1 : 0))) {
      flush();
      current.push({ piece, indices: piece.indices });
      count = tris;
      continue;
    }
    // Bigger than a frame: cut along the Morton curve, filling frame after frame.
    const ordered = spatialOrder(piece.indices, piece.position);
    for (let t = 0; t < tris; ) {
      if (room() <= 0) flush();
      const take = Math.min(room(), tris - t);
      current.push({ piece, indices: ordered.subarray(t * 3, (t + take) * 3) });
      count += take;
      t += take;
    }
  }
  flush();
  return frames;
}

/** Copies the used vertices of an attribute, padded so that one vertex is a multiple of 4 bytes. */
function gather(attr: Attribute, used: Uint32Array): { bytes: Uint8Array; comps: number } {
  const bytesPer = COMPONENT_BYTES[attr.type];
  let comps = attr.itemSize;
  while ((comps * bytesPer) % 4) comps++;
  const out = new ARRAYS[attr.type](used.length * comps);
  for (let i = 0; i < used.length; i++) {
    const from = used[i]! * attr.itemSize;
    for (let k = 0; k < attr.itemSize; k++) out[i * comps + k] = attr.array[from + k]!;
  }
  return { bytes: new Uint8Array(out.buffer, out.byteOffset, out.byteLength), comps };
}

/** Encodes one frame: for each slice, its own compact vertex set and meshopt-encoded buffers. */
function encodeSlices(part: ManifestPart, chunk: number, chunks: number, matrix: number[], slices: Slice[], remap: Map<Piece, Int32Array>): Uint8Array {
  const sections: Uint8Array[] = [];
  let offset = 0;
  const add = (data: Uint8Array): { offset: number; length: number } => {
    const at = offset;
    sections.push(data);
    offset += data.length;
    const pad = (4 - (data.length % 4)) % 4;
    if (pad) {
      sections.push(new Uint8Array(pad));
      offset += pad;
    }
    return { offset: at, length: data.length };
  };
  const prims: FramePrimitive[] = [];
  let triangles = 0;
  for (const { piece, indices } of slices) {
    const vertexCount = piece.position.array.length / piece.position.itemSize;
    let map = remap.get(piece);
    if (!map) remap.set(piece, (map = new Int32Array(vertexCount).fill(-1)));
    const used: number[] = [];
    const local = new Uint32Array(indices.length);
    for (let i = 0; i < indices.length; i++) {
      const v = indices[i]!;
      let n = map[v]!;
      if (n < 0) {
        n = used.length;
        map[v] = n;
        used.push(v);
      }
      local[i] = n;
    }
    for (const v of used) map[v] = -1; // reset for the next slice of the same piece
    const usedArray = Uint32Array.from(used);
    const vertexSection = (attr: Attribute): VertexSection => {
      const { bytes, comps } = gather(attr, usedArray);
      const stride = comps * COMPONENT_BYTES[attr.type];
      const encoded = MeshoptEncoder.encodeGltfBuffer(bytes, usedArray.length, stride, 'ATTRIBUTES');
      return { type: attr.type, comps, size: attr.itemSize, normalized: attr.normalized, ...add(encoded) };
    };
    const position = vertexSection(piece.position);
    const normal = piece.normal ? vertexSection(piece.normal) : null;
    const wide = usedArray.length > 65535;
    const indexArray = wide ? local : Uint16Array.from(local);
    const indexBytes = new Uint8Array(indexArray.buffer, indexArray.byteOffset, indexArray.byteLength);
    const index = { type: wide ? ('u32' as const) : ('u16' as const), ...add(MeshoptEncoder.encodeGltfBuffer(indexBytes, local.length, wide ? 4 : 2, 'TRIANGLES')) };
    prims.push({ color: piece.color, doubleSided: piece.doubleSided, vertices: usedArray.length, indices: local.length, position, normal, index });
    triangles += local.length / 3;
  }
  const body = new Uint8Array(offset);
  let at = 0;
  for (const s of sections) {
    body.set(s, at);
    at += s.length;
  }
  const header: FrameHeader = { part: part.id, chunk, chunks, triangles, matrix, prims };
  return encodeFrame(header, body);
}

/** Cuts a converted model into its stream pack. */
export async function buildPack(glb: Uint8Array, manifest: Manifest, options: { chunkTriangles: number }): Promise<Pack> {
  const doc = await (await reader()).readBinary(glb);
  const nodes = doc.getRoot().listNodes();
  const meshes = doc.getRoot().listMeshes();
  const frames: Uint8Array[] = [];
  const index: PackIndex = { format: PACK_FORMAT, chunkTriangles: options.chunkTriangles, manifest, order: [], chunks: {}, frames: [], bytes: 0 };
  let offset = 0;
  for (const part of streamingOrder(manifest)) {
    const node = nodes[part.node];
    if (!node) throw new Error(`manifest part ${part.id} names node ${part.node}, which the GLB does not have`);
    const pieces: Piece[] = [];
    for (const m of part.meshes) {
      const mesh = meshes[m];
      if (!mesh) throw new Error(`manifest part ${part.id} names mesh ${m}, which the GLB does not have`);
      for (const prim of mesh.listPrimitives()) {
        const position = attribute(prim, 'POSITION');
        const indices = triangleList(prim);
        if (!position || !indices || indices.length === 0) continue;
        const material = prim.getMaterial();
        pieces.push({
          color: (material?.getBaseColorFactor() ?? [1, 1, 1, 1]) as Piece['color'],
          doubleSided: material?.getDoubleSided() ?? false,
          position,
          normal: attribute(prim, 'NORMAL'),
          indices,
        });
      }
    }
    if (pieces.length === 0) continue;
    const matrix = Array.from(node.getWorldMatrix());
    const first = index.frames.length;
    const groups = chunkPart(pieces, (i) => frameBudget(options.chunkTriangles, first + i));
    const remap = new Map<Piece, Int32Array>();
    index.order.push(part.id);
    index.chunks[part.id] = groups.length;
    groups.forEach((slices, chunk) => {
      const frame = encodeSlices(part, chunk, groups.length, matrix, slices, remap);
      frames.push(frame);
      index.frames.push({ part: part.id, chunk, chunks: groups.length, triangles: slices.reduce((n, s) => n + s.indices.length / 3, 0), offset, length: frame.length });
      offset += frame.length;
    });
  }
  index.bytes = offset;
  return { index, data: Buffer.concat(frames, offset) };
}
