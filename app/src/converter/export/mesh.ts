// Mesh targets from a converted model: the viewing GLB (meshopt-compressed, quantized) decoded
// back to plain float geometry with glTF-Transform, then written as a plain GLB, a binary STL
// or an OBJ with its MTL. Every triangle of the scene is written once per node that shows it,
// in world space, so an export has exactly the model's triangle count.
import { type Document, type Mesh, type Node, NodeIO, Primitive } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { dequantize } from '@gltf-transform/functions';
import { zipSync } from 'fflate';
import { MeshoptDecoder } from 'meshoptimizer';

const COMPRESSION = new Set(['EXT_meshopt_compression', 'KHR_mesh_quantization', 'KHR_draco_mesh_compression']);

export async function readPlain(glb: Uint8Array): Promise<{ io: NodeIO; doc: Document }> {
  await MeshoptDecoder.ready;
  const io = new NodeIO().registerExtensions(ALL_EXTENSIONS).registerDependencies({ 'meshopt.decoder': MeshoptDecoder });
  const doc = await io.readBinary(glb);
  await doc.transform(dequantize());
  for (const ext of doc.getRoot().listExtensionsUsed()) if (COMPRESSION.has(ext.extensionName)) ext.dispose();
  return { io, doc };
}

/** A GLB any glTF reader opens: no meshopt, no quantization. */
export async function plainGlb(glb: Uint8Array): Promise<Uint8Array> {
  const { io, doc } = await readPlain(glb);
  return io.writeBinary(doc);
}

interface Triangles {
  name: string;
  material: number;
  /** World-space positions, 9 floats a triangle. */
  positions: Float32Array;
}

function transform(m: number[], x: number, y: number, z: number): [number, number, number] {
  return [m[0]! * x + m[4]! * y + m[8]! * z + m[12]!, m[1]! * x + m[5]! * y + m[9]! * z + m[13]!, m[2]! * x + m[6]! * y + m[10]! * z + m[14]!];
}

/** Every triangle primitive the scene shows, in world space, with its material's index. */
function worldTriangles(doc: Document): { groups: Triangles[]; materials: Array<{ name: string; rgba: number[] }> } {
  const root = doc.getRoot();
  const materials = root.listMaterials().map((m, i) => ({ name: m.getName() || `material_${i}`, rgba: m.getBaseColorFactor() }));
  const materialIndex = new Map(root.listMaterials().map((m, i) => [m, i]));
  const groups: Triangles[] = [];
  const visit = (node: Node): void => {
    const mesh: Mesh | null = node.getMesh();
    if (mesh) {
      const matrix = node.getWorldMatrix() as unknown as number[];
      for (const prim of mesh.listPrimitives()) {
        if (prim.getMode() !== Primitive.Mode.TRIANGLES) continue;
        const position = prim.getAttribute('POSITION');
        if (!position) continue;
        const indices = prim.getIndices();
        const count = indices ? indices.getCount() : position.getCount();
        const out = new Float32Array(count * 3);
        const v: number[] = [0, 0, 0];
        for (let i = 0; i < count; i++) {
          position.getElement(indices ? indices.getScalar(i) : i, v);
          out.set(transform(matrix, v[0]!, v[1]!, v[2]!), i * 3);
        }
        const material = prim.getMaterial();
        groups.push({ name: node.getName() || mesh.getName() || `part_${groups.length}`, material: material ? (materialIndex.get(material) ?? -1) : -1, positions: out });
      }
    }
    for (const child of node.listChildren()) visit(child);
  };
  for (const scene of root.listScenes()) for (const node of scene.listChildren()) visit(node);
  return { groups, materials };
}

/** Binary STL: an 80-byte header, the triangle count, then normal, three vertices and 2 bytes per triangle. */
export async function stlFrom(glb: Uint8Array): Promise<{ bytes: Uint8Array; triangles: number }> {
  const { doc } = await readPlain(glb);
  const { groups } = worldTriangles(doc);
  const triangles = groups.reduce((n, g) => n + g.positions.length / 9, 0);
  const out = Buffer.alloc(84 + triangles * 50);
  out.write('binary STL written by cadfleet', 0, 'ascii');
  out.writeUInt32LE(triangles, 80);
  let o = 84;
  for (const g of groups) {
    const p = g.positions;
    for (let t = 0; t < p.length; t += 9) {
      const ux = p[t + 3]! - p[t]!, uy = p[t + 4]! - p[t + 1]!, uz = p[t + 5]! - p[t + 2]!;
      const vx = p[t + 6]! - p[t]!, vy = p[t + 7]! - p[t + 1]!, vz = p[t + 8]! - p[t + 2]!;
      let nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      const len = Math.hypot(nx, ny, nz) || 1;
      nx /= len;
      ny /= len;
      nz /= len;
      for (const value of [nx, ny, nz]) {
        out.writeFloatLE(value, o);
        o += 4;
      }
      for (let k = 0; k < 9; k++) {
        out.writeFloatLE(p[t + k]!, o);
        o += 4;
      }
      o += 2;
    }
  }
  return { bytes: out, triangles };
}

const safeName = (name: string): string => name.replace(/[^\w.-]+/g, '_').slice(0, 64) || 'part';

/** OBJ and its MTL (base colours, opacity), zipped together: `model.obj`, `model.mtl`. */
export async function objZipFrom(glb: Uint8Array): Promise<{ bytes: Uint8Array; triangles: number }> {
  const { doc } = await readPlain(glb);
  const { groups, materials } = worldTriangles(doc);
  const mtl = ['# written by cadfleet'];
  materials.forEach((m, i) => {
    const [r, g, b, a] = m.rgba;
    mtl.push(`newmtl m${i}_${safeName(m.name)}`, `Kd ${r!.toFixed(6)} ${g!.toFixed(6)} ${b!.toFixed(6)}`, `d ${(a ?? 1).toFixed(6)}`, 'illum 1');
  });
  const obj: string[] = ['# written by cadfleet', 'mtllib model.mtl'];
  let base = 1;
  let triangles = 0;
  for (const g of groups) {
    obj.push(`o ${safeName(g.name)}`);
    if (g.material >= 0) obj.push(`usemtl m${g.material}_${safeName(materials[g.material]!.name)}`);
    const p = g.positions;
    for (let i = 0; i < p.length; i += 3) obj.push(`v ${p[i]} ${p[i + 1]} ${p[i + 2]}`);
    for (let t = 0; t < p.length / 3; t += 3) obj.push(`f ${base + t} ${base + t + 1} ${base + t + 2}`);
    base += p.length / 3;
    triangles += p.length / 9;
  }
  const bytes = zipSync({ 'model.obj': new TextEncoder().encode(`${obj.join('\n')}\n`), 'model.mtl': new TextEncoder().encode(`${mtl.join('\n')}\n`) }, { level: 6 });
  return { bytes, triangles };
}
