import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { type Document, type GLTF, type JSONDocument, Logger, NodeIO } from '@gltf-transform/core';
import { ALL_EXTENSIONS } from '@gltf-transform/extensions';
import { ConvertError } from '../errors';
import type { Imported, ImportInput } from './index';

interface AssimpFile {
  GetPath(): string;
  GetContent(): Uint8Array;
}
interface AssimpResult {
  IsSuccess(): boolean;
  GetErrorCode(): string;
  FileCount(): number;
  GetFile(index: number): AssimpFile;
}
interface AssimpFileList {
  AddFile(name: string, content: Uint8Array): void;
}
interface AssimpModule {
  FileList: new () => AssimpFileList;
  ConvertFileList(files: AssimpFileList, format: string): AssimpResult;
}

let modulePromise: Promise<AssimpModule> | undefined;

export function loadAssimp(): Promise<AssimpModule> {
  if (!modulePromise) {
    const require = createRequire(import.meta.url);
    const factory = require('assimpjs') as () => Promise<AssimpModule>;
    modulePromise = factory();
  }
  return modulePromise;
}

/** Files an OBJ or glTF names beside itself: material libraries, external buffers (textures are read after assimp, see embedImages). */
export function referencedFiles(input: ImportInput): string[] {
  const text = Buffer.from(input.content.buffer, input.content.byteOffset, input.content.byteLength).toString('utf8');
  if (input.format === 'obj') {
    return [...text.matchAll(/^\s*mtllib\s+(.+?)\s*$/gm)].flatMap((m) => m[1]!.split(/\s+(?=\S+\.mtl\b)/i));
  }
  if (input.format === 'gltf') {
    let json: { buffers?: Array<{ uri?: string }> };
    try {
      json = JSON.parse(text) as typeof json;
    } catch (err) {
      throw new ConvertError('corrupt', `the glTF file is not valid JSON: ${(err as Error).message}`);
    }
    return (json.buffers ?? [])
      .map((entry) => entry.uri)
      .filter((uri): uri is string => typeof uri === 'string' && !uri.startsWith('data:'))
      .map((uri) => decodeURIComponent(uri));
  }
  return [];
}

const inside = (base: string, target: string): boolean => {
  const rel = path.relative(base, target);
  return rel !== '..' && !rel.startsWith('../') && !path.isAbsolute(rel);
};

/**
 * Resolves a reference relative to the model's folder `dir`, and only inside `baseDir` (the
 * model's own folder, or the root of the archive it came in). A model that points at
 * `../../etc/passwd` or an absolute path is refused, not silently read.
 */
export function resolveReference(dir: string, reference: string, baseDir: string = dir): string {
  // Models written on Windows name their textures with backslashes (`.\\tex.jpg`).
  const normalized = reference.replace(/\\/g, '/');
  const resolved = path.resolve(dir, normalized);
  const lexicallyInside = !path.isAbsolute(normalized) && !/^[a-z]:/i.test(normalized) && inside(baseDir, resolved);
  // A symlink beside the model may point anywhere: judge where it really leads.
  const reallyInside = lexicallyInside && (!fs.existsSync(resolved) || inside(fs.realpathSync(baseDir), fs.realpathSync(resolved)));
  if (!reallyInside) {
    throw new ConvertError(
      'unsafe-reference',
      `the model references ${JSON.stringify(reference)}, which is outside ${baseDir === dir ? 'its own folder; only files beside the model' : 'the uploaded archive; only files in the archive'} can be referenced`,
    );
  }
  return resolved;
}

export async function importAssimp(input: ImportInput): Promise<Imported> {
  const assimp = await loadAssimp();
  const files = new assimp.FileList();
  files.AddFile(input.name, input.content);
  if (input.dir) {
    for (const reference of referencedFiles(input)) {
      const file = resolveReference(input.dir, reference, input.baseDir);
      // A missing material library is not fatal: assimp falls back to a default material.
      if (fs.existsSync(file) && fs.statSync(file).isFile()) files.AddFile(reference, fs.readFileSync(file));
    }
  }
  const result = assimp.ConvertFileList(files, 'glb2');
  if (!result.IsSuccess() || result.FileCount() === 0) {
    throw new ConvertError(
      'corrupt',
      `the ${input.format.toUpperCase()} file could not be read (${result.GetErrorCode() || 'import error'}); it is damaged or not a ${input.format.toUpperCase()} file`,
    );
  }
  const glb = result.GetFile(0).GetContent();
  let doc: Document;
  try {
    // assimp declares FB_ngon_encoding, which nothing downstream needs: keep the log quiet.
    const io = new NodeIO().setLogger(new Logger(Logger.Verbosity.ERROR)).registerExtensions(ALL_EXTENSIONS);
    doc = await io.readJSON(embedImages(splitGlb(glb), input.dir, input.baseDir));
  } catch (err) {
    throw new ConvertError('corrupt', `the ${input.format.toUpperCase()} file produced unreadable geometry: ${(err as Error).message}`);
  }
  return { doc, units: 'unknown' };
}

/** Splits a GLB into its JSON and binary chunks (glTF 2.0 spec, section 4.4). */
export function splitGlb(glb: Uint8Array): JSONDocument {
  const view = new DataView(glb.buffer, glb.byteOffset, glb.byteLength);
  let offset = 12;
  let json: GLTF.IGLTF | undefined;
  let bin: Uint8Array<ArrayBuffer> | undefined;
  while (offset + 8 <= glb.byteLength) {
    const length = view.getUint32(offset, true);
    const type = view.getUint32(offset + 4, true);
    const chunk = glb.subarray(offset + 8, offset + 8 + length);
    if (type === 0x4e4f534a) json = JSON.parse(Buffer.from(chunk).toString('utf8')) as GLTF.IGLTF;
    else if (type === 0x004e4942) bin = chunk.slice();
    offset += 8 + length;
  }
  if (!json) throw new Error('the GLB has no JSON chunk');
  return { json, resources: bin ? { '@glb.bin': bin } : {} };
}

// A 1x1 white PNG: stands in for a texture file the upload did not include.
const BLANK_PNG = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==';

const IMAGE_TYPES: Readonly<Record<string, string>> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', ktx2: 'image/ktx2' };

/**
 * assimp keeps textures as references to files beside the model. Those that the upload carries
 * (an archive with the model's textures), inside the allowed folder and of a type glTF can hold,
 * are embedded in the GLB. The others (a single-file upload, a path outside the archive, a .tga)
 * are dropped from the materials (their colours stay) and the images blanked, for prune() to remove.
 */
export function embedImages(doc: JSONDocument, dir: string | undefined, baseDir: string | undefined = dir): JSONDocument {
  const images = doc.json.images ?? [];
  images.forEach((image, i) => {
    if (!dir || !image.uri || image.uri.startsWith('data:')) return;
    const type = IMAGE_TYPES[path.extname(image.uri).slice(1).toLowerCase()];
    if (!type) return;
    let file: string;
    try {
      file = resolveReference(dir, decodeURIComponent(image.uri), baseDir);
    } catch {
      return; // outside the folder: blanked below, the model still converts
    }
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) return;
    const key = `cadfleet-image-${i}.${path.extname(file).slice(1).toLowerCase()}`;
    doc.resources[key] = new Uint8Array(fs.readFileSync(file));
    image.uri = key;
    image.mimeType = type;
  });
  return withoutExternalImages(doc);
}

/** Blanks every image still referenced by path and unhooks its textures from the materials. */
export function withoutExternalImages(doc: JSONDocument): JSONDocument {
  const images = doc.json.images ?? [];
  const external = new Set(images.flatMap((image, i) => (image.uri && !image.uri.startsWith('data:') && !(image.uri in doc.resources) ? [i] : [])));
  if (external.size === 0) return doc;
  const badTextures = new Set((doc.json.textures ?? []).flatMap((t, i) => (t.source !== undefined && external.has(t.source) ? [i] : [])));
  const strip = (value: unknown): void => {
    if (!value || typeof value !== 'object') return;
    for (const [key, child] of Object.entries(value as Record<string, unknown>)) {
      const index = (child as { index?: unknown } | null)?.index;
      if (/Texture$/.test(key) && typeof index === 'number' && badTextures.has(index)) delete (value as Record<string, unknown>)[key];
      else strip(child);
    }
  };
  strip(doc.json.materials);
  for (const i of external) {
    const image = images[i]!;
    image.uri = BLANK_PNG;
    delete image.mimeType;
  }
  return doc;
}
