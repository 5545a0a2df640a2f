import { createRequire } from 'node:module';
import { Document, type Node } from '@gltf-transform/core';
import { ConvertError } from '../errors';
import { addTriangles, MaterialCache } from './build';
import type { Imported, ImportInput } from './index';

interface Vector<T> {
  size(): number;
  get(i: number): T;
}
interface PlacedGeometry {
  color: { x: number; y: number; z: number; w: number };
  flatTransformation: number[];
  geometryExpressID: number;
}
interface FlatMesh {
  expressID: number;
  geometries: Vector<PlacedGeometry>;
}
interface IfcGeometry {
  GetVertexData(): number;
  GetVertexDataSize(): number;
  GetIndexData(): number;
  GetIndexDataSize(): number;
  delete(): void;
}
interface IfcApi {
  Init(): Promise<void>;
  OpenModel(data: Uint8Array, settings?: object): number;
  CloseModel(id: number): void;
  StreamAllMeshes(id: number, cb: (mesh: FlatMesh) => void): void;
  GetGeometry(id: number, expressId: number): IfcGeometry;
  GetVertexArray(ptr: number, size: number): Float32Array;
  GetIndexArray(ptr: number, size: number): Uint32Array;
  GetLine(id: number, expressId: number): { Name?: { value?: string } | null; type: number };
  GetNameFromTypeCode(type: number): string;
  SetLogLevel?(level: number): void;
}

let apiPromise: Promise<IfcApi> | undefined;

export function loadIfc(): Promise<IfcApi> {
  if (!apiPromise) {
    const require = createRequire(import.meta.url);
    const { IfcAPI, LogLevel } = require('web-ifc') as { IfcAPI: new () => IfcApi; LogLevel?: { LOG_LEVEL_OFF?: number } };
    apiPromise = (async () => {
      const api = new IfcAPI();
      await api.Init();
      // web-ifc logs every geometry it cannot triangulate to stdout; the result says enough.
      if (api.SetLogLevel && LogLevel?.LOG_LEVEL_OFF !== undefined) api.SetLogLevel(LogLevel.LOG_LEVEL_OFF);
      return api;
    })();
  }
  return apiPromise;
}

/** Applies a column-major 4x4 matrix to positions and its 3x3 part to normals, in place. */
function transform(vertices: Float32Array, m: number[], positions: Float32Array, normals: Float32Array): void {
  const count = vertices.length / 6;
  for (let i = 0; i < count; i++) {
    const [x, y, z, nx, ny, nz] = vertices.subarray(i * 6, i * 6 + 6) as unknown as number[];
    positions[i * 3] = m[0]! * x! + m[4]! * y! + m[8]! * z! + m[12]!;
    positions[i * 3 + 1] = m[1]! * x! + m[5]! * y! + m[9]! * z! + m[13]!;
    positions[i * 3 + 2] = m[2]! * x! + m[6]! * y! + m[10]! * z! + m[14]!;
    const tx = m[0]! * nx! + m[4]! * ny! + m[8]! * nz!;
    const ty = m[1]! * nx! + m[5]! * ny! + m[9]! * nz!;
    const tz = m[2]! * nx! + m[6]! * ny! + m[10]! * nz!;
    const len = Math.hypot(tx, ty, tz) || 1;
    normals[i * 3] = tx / len;
    normals[i * 3 + 1] = ty / len;
    normals[i * 3 + 2] = tz / len;
  }
}

export async function importIfc(input: ImportInput): Promise<Imported> {
  const api = await loadIfc();
  let modelId: number;
  try {
    modelId = api.OpenModel(input.content, { COORDINATE_TO_ORIGIN: true });
  } catch (err) {
    throw new ConvertError('corrupt', `the IFC file could not be opened: ${(err as Error).message}`);
  }
  try {
    const doc = new Document();
    doc.createBuffer();
    const materials = new MaterialCache(doc);
    const root = doc.createNode('model');
    const groups = new Map<string, Node>();
    api.StreamAllMeshes(modelId, (flat) => {
      const line = api.GetLine(modelId, flat.expressID);
      const typeName = api.GetNameFromTypeCode(line.type) || 'IfcProduct';
      const name = line.Name?.value || `${typeName} #${flat.expressID}`;
      const mesh = doc.createMesh(name);
      for (let g = 0; g < flat.geometries.size(); g++) {
        const placed = flat.geometries.get(g);
        const geometry = api.GetGeometry(modelId, placed.geometryExpressID);
        try {
          const vertices = api.GetVertexArray(geometry.GetVertexData(), geometry.GetVertexDataSize());
          const indices = api.GetIndexArray(geometry.GetIndexData(), geometry.GetIndexDataSize());
          if (indices.length === 0) continue;
          const positions = new Float32Array((vertices.length / 6) * 3);
          const normals = new Float32Array(positions.length);
          transform(vertices, placed.flatTransformation, positions, normals);
          const { x, y, z, w } = placed.color;
          addTriangles(doc, mesh, { positions, normals, indices: Uint32Array.from(indices) }, materials.get([x, y, z], w));
        } finally {
          geometry.delete();
        }
      }
      if (mesh.listPrimitives().length === 0) {
        mesh.dispose();
        return;
      }
      let group = groups.get(typeName);
      if (!group) {
        group = doc.createNode(typeName);
        groups.set(typeName, group);
        root.addChild(group);
      }
      group.addChild(doc.createNode(name).setMesh(mesh));
    });
    if (groups.size === 0) throw new ConvertError('corrupt', 'the IFC file holds no product with geometry');
    doc.createScene('model').addChild(root);
    // web-ifc returns metres whatever the file's length unit.
    return { doc, units: 'meter' };
  } finally {
    api.CloseModel(modelId);
  }
}
