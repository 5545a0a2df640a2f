import path from 'node:path';
import { ConvertError } from './errors';

export type Format = 'step' | 'iges' | 'brep' | 'stl' | 'obj' | 'ply' | 'gltf' | 'glb' | 'fbx' | '3ds' | 'dae' | 'off' | 'ifc';

/** The engine that reads a format. */
export type Engine = 'occt' | 'assimp' | 'ifc';

const EXTENSIONS: Readonly<Record<string, Format>> = {
  stp: 'step',
  step: 'step',
  igs: 'iges',
  iges: 'iges',
  brep: 'brep',
  brp: 'brep',
  stl: 'stl',
  obj: 'obj',
  ply: 'ply',
  gltf: 'gltf',
  glb: 'glb',
  fbx: 'fbx',
  '3ds': '3ds',
  dae: 'dae',
  off: 'off',
  ifc: 'ifc',
};

export const SUPPORTED_EXTENSIONS: readonly string[] = Object.keys(EXTENSIONS);

export function engineFor(format: Format): Engine {
  switch (format) {
    case 'step':
    case 'iges':
    case 'brep':
      return 'occt';
    case 'ifc':
      return 'ifc';
    default:
      return 'assimp';
  }
}

/**
 * Refuses names that could be taken for a path by anything downstream (a Windows client's
 * `..\..\x.stp`, control characters). The converter never builds a path from the name, but
 * the name travels into manifests, logs and download headers.
 */
export function checkFileName(name: string): void {
  if (name.length === 0 || name.length > 255) {
    throw new ConvertError('unsupported', `the file name must be 1 to 255 characters long, got ${name.length}`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new ConvertError('unsafe-reference', 'the file name contains control characters; rename the file and try again');
  }
  if (name.includes('\\') || name.split('/').includes('..')) {
    throw new ConvertError('unsafe-reference', `the file name ${JSON.stringify(name)} looks like a path; upload the file under a plain name`);
  }
}

export function formatFromName(fileName: string): Format {
  const ext = path.extname(fileName).slice(1).toLowerCase();
  const format = EXTENSIONS[ext];
  if (!format) {
    const shown = ext ? `.${ext}` : 'no extension';
    throw new ConvertError(
      'unsupported',
      `unsupported file type (${shown}); supported: ${SUPPORTED_EXTENSIONS.map((e) => `.${e}`).join(', ')}`,
    );
  }
  return format;
}

const ascii = (bytes: Uint8Array, start = 0, end = bytes.length): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset + start, Math.max(0, Math.min(end, bytes.length) - start)).toString('latin1');

/** Skips a UTF-8 byte order mark and leading white space. */
function textStart(head: Uint8Array): string {
  return ascii(head, 0, 4096).replace(/^\uFEFF|^\u00ef\u00bb\u00bf/, '').trimStart();
}

function looksBinary(head: Uint8Array): boolean {
  const n = Math.min(head.length, 4096);
  for (let i = 0; i < n; i++) if (head[i] === 0) return true;
  return false;
}

/**
 * Checks that the content is what its extension says, before any parser sees it, so that a
 * renamed text file or random bytes get a clear error instead of a parser's abort. Returns the
 * format to use (an IFC file saved as .stp is read as IFC).
 */
export function sniffFormat(format: Format, content: Uint8Array): Format {
  const label = format.toUpperCase();
  const notA = (what: string): ConvertError =>
    new ConvertError('corrupt', `the file is not a valid ${label} file: ${what}`);
  const start = textStart(content);
  switch (format) {
    case 'step':
    case 'ifc': {
      if (!start.startsWith('ISO-10303-21')) throw notA('it does not start with the ISO-10303-21 header');
      if (!/END-ISO-10303-21\s*;\s*$/.test(ascii(content, Math.max(0, content.length - 4096)))) {
        throw notA('it is truncated (it does not end with END-ISO-10303-21;); upload the complete file');
      }
      const schema = /FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'/i.exec(ascii(content, 0, 65536))?.[1] ?? '';
      if (/^IFC/i.test(schema)) return 'ifc';
      if (format === 'ifc') throw notA(`its schema is ${schema || 'missing'}, not IFC`);
      return 'step';
    }
    case 'iges': {
      // IGES is fixed 80-column records; the first is a Start record with 'S' in column 73.
      const first = ascii(content, 0, 82).split(/\r?\n/)[0] ?? '';
      if (first.length < 73 || first[72] !== 'S') throw notA('the first line is not an 80-column IGES start record');
      return format;
    }
    case 'brep':
      if (!/^(DBRep_DrawableShape|CASCADE Topology V)/.test(start)) throw notA('it does not start with an OpenCASCADE BREP header');
      return format;
    case 'glb':
      if (ascii(content, 0, 4) !== 'glTF') throw notA("it does not start with the 'glTF' magic");
      return format;
    case 'gltf':
      if (!start.startsWith('{')) throw notA('it is not a JSON document');
      return format;
    case 'ply':
      if (!start.startsWith('ply')) throw notA("it does not start with 'ply'");
      return format;
    case 'off':
      if (!/^[CNST4]*OFF/.test(start)) throw notA("it does not start with 'OFF'");
      return format;
    case '3ds':
      if (content[0] !== 0x4d || content[1] !== 0x4d) throw notA('it does not start with the 3DS main chunk');
      return format;
    case 'fbx':
      if (!ascii(content, 0, 18).startsWith('Kaydara FBX Binary') && !/^(;|FBXHeaderExtension)/.test(start)) {
        throw notA('it is neither binary nor ASCII FBX');
      }
      return format;
    case 'dae':
      if (!start.startsWith('<') || !/<COLLADA/i.test(ascii(content, 0, 4096))) throw notA('it is not a COLLADA XML document');
      return format;
    case 'stl': {
      if (start.startsWith('solid') && !looksBinary(content.subarray(0, 4096))) return format;
      if (content.length >= 84) {
        const count = Buffer.from(content.buffer, content.byteOffset, content.length).readUInt32LE(80);
        if (content.length === 84 + count * 50) return format;
        throw notA(`the binary header declares ${count} triangles (${84 + count * 50} bytes) but the file has ${content.length} bytes`);
      }
      throw notA('it is neither ASCII (solid ...) nor binary STL');
    }
    case 'obj':
      if (looksBinary(content)) throw notA('it contains binary data; OBJ is a text format');
      return format;
  }
}
