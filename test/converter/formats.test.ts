import { describe, expect, it } from 'vitest';
import { ConvertError } from '../../app/src/converter/errors';
import { checkFileName, formatFromName, sniffFormat } from '../../app/src/converter/formats';
import { referencedFiles, resolveReference } from '../../app/src/converter/importers/assimp';

const bytes = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'));
const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return (err as ConvertError).code;
  }
  return undefined;
};

describe('formatFromName', () => {
  it('maps extensions case-insensitively', () => {
    expect(formatFromName('Bracket.STEP')).toBe('step');
    expect(formatFromName('a.igs')).toBe('iges');
    expect(formatFromName('plant.IFC')).toBe('ifc');
    expect(formatFromName('x.3ds')).toBe('3ds');
  });

  it('names the supported types when refusing one', () => {
    expect(() => formatFromName('report.docx')).toThrow(/unsupported file type \(\.docx\); supported: .*\.stp/);
    expect(() => formatFromName('README')).toThrow(/no extension/);
  });
});

describe('checkFileName', () => {
  it('refuses names that are paths in disguise', () => {
    expect(codeOf(() => checkFileName('..\\..\\windows\\evil.stp'))).toBe('unsafe-reference');
    expect(codeOf(() => checkFileName('bad\u0007name.stl'))).toBe('unsafe-reference');
    expect(codeOf(() => checkFileName('a'.repeat(300) + '.stl'))).toBe('unsupported');
    expect(codeOf(() => checkFileName('bracket v2 (final).step'))).toBeUndefined();
  });
});

describe('sniffFormat', () => {
  const step = 'ISO-10303-21;\nHEADER;\nFILE_SCHEMA((\'AUTOMOTIVE_DESIGN\'));\nENDSEC;\nEND-ISO-10303-21;\n';

  it('accepts STEP and reads an IFC schema saved as .stp as IFC', () => {
    expect(sniffFormat('step', bytes(step))).toBe('step');
    expect(sniffFormat('step', bytes(step.replace('AUTOMOTIVE_DESIGN', 'IFC2X3')))).toBe('ifc');
    expect(() => sniffFormat('ifc', bytes(step))).toThrow(/schema is AUTOMOTIVE_DESIGN, not IFC/);
  });

  it('catches a STEP file cut short', () => {
    expect(() => sniffFormat('step', bytes(step.replace('END-ISO-10303-21;\n', '')))).toThrow(/truncated/);
  });

  it('refuses a text file named .igs', () => {
    expect(() => sniffFormat('iges', bytes('hello, this is not IGES\n'))).toThrow(/not a valid IGES file/);
  });

  it('checks a binary STL against its declared triangle count', () => {
    const stl = new Uint8Array(84 + 50);
    new DataView(stl.buffer).setUint32(80, 1, true);
    expect(sniffFormat('stl', stl)).toBe('stl');
    expect(() => sniffFormat('stl', stl.subarray(0, 120))).toThrow(/declares 1 triangles \(134 bytes\) but the file has 120 bytes/);
  });

  it('refuses binary garbage named .obj', () => {
    expect(() => sniffFormat('obj', new Uint8Array([0x76, 0x20, 0, 1, 2]))).toThrow(/contains binary data/);
  });
});

describe('references beside a model', () => {
  it('finds OBJ material libraries and external glTF buffers, but not data URIs', () => {
    expect(referencedFiles({ name: 'a.obj', format: 'obj', content: bytes('mtllib parts.mtl\nv 0 0 0\n') })).toEqual(['parts.mtl']);
    const gltf = JSON.stringify({ buffers: [{ uri: 'mesh%20data.bin' }, { uri: 'data:application/octet-stream;base64,AAAA' }] });
    expect(referencedFiles({ name: 'a.gltf', format: 'gltf', content: bytes(gltf) })).toEqual(['mesh data.bin']);
  });

  it('resolves only inside the model folder', () => {
    expect(resolveReference('/srv/in', 'parts.mtl')).toBe('/srv/in/parts.mtl');
    expect(resolveReference('/srv/in', '.\\tex\\wood.jpg')).toBe('/srv/in/tex/wood.jpg');
    expect(resolveReference('/srv/in', '..foo.mtl')).toBe('/srv/in/..foo.mtl');
    for (const bad of ['../../etc/passwd', '/etc/passwd', '..\\..\\secret.bin', 'C:\\Windows\\win.ini', 'sub/../../x']) {
      expect(codeOf(() => resolveReference('/srv/in', bad)), bad).toBe('unsafe-reference');
    }
  });
});
