import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BIN, runConvert, tempDir } from '../helpers/convert';
import { cax, stlSample } from '../helpers/samples';

const BOMB = path.resolve('test/fixtures/hostile/sphere-bomb.brep');

/** Every file below a folder, with its size and modification time. */
function snapshot(root: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const stat = fs.lstatSync(full);
        files.set(path.relative(root, full), `${stat.size}:${stat.mtimeMs}`);
      }
    }
  };
  walk(root);
  return files;
}

interface Case {
  label: string;
  /** File name inside the input folder. */
  name: string;
  content: () => Buffer | string;
  /** Other files beside it. */
  beside?: Record<string, string>;
  args?: string[];
  code: number;
  errorCode: string;
  error: RegExp;
}

const asStep = fs.readFileSync(cax('as1-oc-214.stp'));

const CASES: Case[] = [
  { label: 'a truncated STEP file', name: 'part.stp', content: () => asStep.subarray(0, asStep.length - 5000), code: 1, errorCode: 'corrupt', error: /truncated/ },
  { label: 'a STEP file cut mid-entity at a line end', name: 'part.step', content: () => asStep.subarray(0, asStep.indexOf('\n', 200_000) + 1), code: 1, errorCode: 'corrupt', error: /not a valid STEP file/ },
  { label: 'garbage bytes named .stp', name: 'noise.stp', content: () => Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251)), code: 1, errorCode: 'corrupt', error: /not a valid STEP file: it does not start with the ISO-10303-21 header/ },
  { label: 'garbage bytes named .glb', name: 'noise.glb', content: () => Buffer.alloc(2048, 0xab), code: 1, errorCode: 'corrupt', error: /glTF' magic/ },
  { label: 'an empty file', name: 'empty.step', content: () => '', code: 1, errorCode: 'empty', error: /empty \(0 bytes\)/ },
  { label: 'the malformed STL from node-stl', name: 'box.stl', content: () => fs.readFileSync(stlSample('box.stl')), code: 1, errorCode: 'corrupt', error: /declares 1656 triangles/ },
  { label: 'a text file named .igs', name: 'notes.igs', content: () => 'Meeting notes: the bracket needs a 5 mm fillet.\n', code: 1, errorCode: 'corrupt', error: /not a valid IGES file/ },
  { label: 'an OBJ whose material library points outside its folder', name: 'sneaky.obj', content: () => 'mtllib ../../../../etc/passwd\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n', code: 1, errorCode: 'unsafe-reference', error: /outside its own folder/ },
  { label: 'a glTF whose buffer is an absolute path', name: 'sneaky.gltf', content: () => JSON.stringify({ asset: { version: '2.0' }, buffers: [{ uri: '/etc/shadow', byteLength: 10 }] }), code: 1, errorCode: 'unsafe-reference', error: /outside its own folder/ },
  { label: 'an OBJ whose material library is a symlink out of its folder', name: 'linked.obj', content: () => 'mtllib linked.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n', beside: { 'linked.mtl': '@symlink:/etc/hostname' }, code: 1, errorCode: 'unsafe-reference', error: /outside its own folder/ },
  { label: 'a file name that is a Windows path', name: '..\\..\\evil.stl', content: () => 'solid x\nendsolid x\n', code: 1, errorCode: 'unsafe-reference', error: /looks like a path/ },
  { label: 'an unsupported extension', name: 'drawing.dwg', content: () => 'AC1032', code: 1, errorCode: 'unsupported', error: /unsupported file type \(\.dwg\)/ },
  { label: 'a STEP assembly whose parts are in other files', name: 's1.stp', content: () => fs.readFileSync(cax('s1-c5-214/s1-c5-214.stp')), code: 1, errorCode: 'unsupported', error: /external references/ },
  { label: 'an input over the size limit', name: 'big.stl', content: () => fs.readFileSync(stlSample('Pterosaur_FDM.stl')), args: ['--max-input-mb', '1'], code: 1, errorCode: 'too-large', error: /over the limit of 1048576 bytes/ },
  { label: 'a tessellation bomb against the time limit', name: 'bomb.brep', content: () => fs.readFileSync(BOMB), args: ['--timeout', '3', '--max-memory', '16000'], code: 3, errorCode: 'timeout', error: /longer than the limit of 3 s/ },
  { label: 'a tessellation bomb against the memory limit', name: 'bomb.brep', content: () => fs.readFileSync(BOMB), args: ['--max-memory', '300', '--timeout', '120'], code: 3, errorCode: 'memory', error: /over the limit of 300 MiB/ },
];

describe('bad input ends with a clear error and nothing written outside the output folder', () => {
  it.each(CASES)('$label', async (c) => {
    const root = tempDir();
    const inDir = path.join(root, 'in', 'deep');
    fs.mkdirSync(inDir, { recursive: true });
    const input = path.join(inDir, c.name);
    fs.writeFileSync(input, c.content());
    for (const [name, content] of Object.entries(c.beside ?? {})) {
      if (content.startsWith('@symlink:')) fs.symlinkSync(content.slice('@symlink:'.length), path.join(inDir, name));
      else fs.writeFileSync(path.join(inDir, name), content);
    }
    const outDir = path.join(root, 'out');
    const before = snapshot(root);

    const run = await runConvert(['--input', input, '--output-dir', outDir, ...(c.args ?? [])], outDir);

    expect(run.code, run.stderr).toBe(c.code);
    expect(run.result.ok).toBe(false);
    expect(run.result.code).toBe(c.errorCode);
    expect(run.result.error).toMatch(c.error);
    expect(run.stderr).toContain(run.result.error!);
    const after = snapshot(root);
    const changed = [...after].filter(([file, stamp]) => before.get(file) !== stamp).map(([file]) => file);
    expect(changed).toEqual(['out/result.json']);
    expect([...before.keys()].every((file) => after.has(file))).toBe(true);
  });

  it('replaces a symlink planted at an output name instead of writing through it', async () => {
    const root = tempDir();
    const victim = path.join(root, 'victim.txt');
    fs.writeFileSync(victim, 'precious');
    const outDir = path.join(root, 'out');
    fs.mkdirSync(outDir);
    fs.symlinkSync(victim, path.join(outDir, 'model.glb'));
    fs.symlinkSync(victim, path.join(outDir, 'result.json'));
    const run = await runConvert(['--input', stlSample('box_2x3x4.stl'), '--output-dir', outDir], outDir);
    expect(run.code, run.stderr).toBe(0);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious');
    expect(fs.lstatSync(path.join(outDir, 'model.glb')).isSymbolicLink()).toBe(false);
  });

  it('leaves no stale model beside a failure when the folder is reused', async () => {
    const outDir = path.join(tempDir(), 'out');
    expect((await runConvert(['--input', stlSample('box_2x3x4.stl'), '--output-dir', outDir], outDir)).code).toBe(0);
    const root = tempDir();
    const bad = path.join(root, 'bad.stl');
    fs.writeFileSync(bad, Buffer.alloc(100, 1));
    const run = await runConvert(['--input', bad, '--output-dir', outDir], outDir);
    expect(run.code).toBe(1);
    expect(fs.readdirSync(outDir).sort()).toEqual(['result.json']);
  });
});

describe('usage errors', () => {
  it('exits 2 with a message when the required options are missing', async () => {
    const run = await runConvert([], tempDir());
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--input and --output-dir are both required/);
  });

  it('exits 2 naming the allowed presets for a bad --quality', async () => {
    const out = tempDir();
    const run = await runConvert(['--input', stlSample('002.STL'), '--output-dir', out, '--quality', 'ultra'], out);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/Allowed choices are coarse, normal, fine/);
  });

  it('exits 2 for a non-numeric limit', async () => {
    const out = tempDir();
    const run = await runConvert(['--input', stlSample('002.STL'), '--output-dir', out, '--timeout', 'soon'], out);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/--timeout must be a positive number, got "soon"/);
  });

  it('documents the exit codes in --help', async () => {
    const run = await runConvert(['--help'], tempDir());
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/Exit codes: 0 converted, 1 bad or unsupported input, 2 usage error, 3 time or memory limit/);
    expect(BIN).toMatch(/cadfleet-convert\.js$/);
  });
});
