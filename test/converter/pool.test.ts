import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createConverter, type ManagedConverter } from '../../app/src/converter/index';
import { BIN, tempDir, validateGlb } from '../helpers/convert';
import { cax, stlSample } from '../helpers/samples';

const BOMB = path.resolve('test/fixtures/hostile/sphere-bomb.brep');
let converter: ManagedConverter | undefined;

afterEach(async () => {
  await converter?.close();
  converter = undefined;
});

describe('warm pool', () => {
  it('serves several conversions from one process, then recycles it after N jobs', async () => {
    converter = createConverter({ mode: 'pool', poolSize: 1, recycleAfterJobs: 2, onOutput: () => undefined });
    const inputs = [cax('as1-oc-214.stp'), stlSample('WALLY_1plate.stl'), cax('io1-cm-214.stp')];
    for (const input of inputs) {
      const outputDir = path.join(tempDir(), 'out');
      const result = await converter.convert({ input, outputDir });
      expect(result.ok, result.error).toBe(true);
      expect(JSON.parse(fs.readFileSync(path.join(outputDir, 'result.json'), 'utf8'))).toEqual(result);
      expect((await validateGlb(path.join(outputDir, 'model.glb'))).numErrors).toBe(0);
    }
    expect(converter.stats().processesStarted).toBe(2);
  });

  it('runs jobs in parallel across its processes', async () => {
    converter = createConverter({ mode: 'pool', poolSize: 2, onOutput: () => undefined });
    const results = await Promise.all(
      ['002.STL', 'box_2x3x4.stl', 'box_3x3x3_offset.stl', 'RasPiCaseLight.stl'].map((name) =>
        converter!.convert({ input: stlSample(name), outputDir: path.join(tempDir(), 'out') }),
      ),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    expect(converter.stats().processesStarted).toBe(2);
  });

  it('stops a job over the memory limit, replaces the process, and serves the next job', async () => {
    converter = createConverter({ mode: 'pool', poolSize: 1, limits: { maxMemoryMb: 350 }, onOutput: () => undefined });
    const bomb = await converter.convert({ input: BOMB, outputDir: path.join(tempDir(), 'out') });
    expect(bomb).toMatchObject({ ok: false, code: 'memory' });
    const next = await converter.convert({ input: stlSample('002.STL'), outputDir: path.join(tempDir(), 'out') });
    expect(next.ok, next.error).toBe(true);
    expect(converter.stats().processesStarted).toBe(2);
  });

  it('reports a bad input as a failed result, not a crash, and keeps the process', async () => {
    converter = createConverter({ mode: 'pool', poolSize: 1, onOutput: () => undefined });
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'junk.stp'), 'not a step file');
    const bad = await converter.convert({ input: path.join(dir, 'junk.stp'), outputDir: path.join(dir, 'out') });
    expect(bad).toMatchObject({ ok: false, code: 'corrupt' });
    const good = await converter.convert({ input: stlSample('002.STL'), outputDir: path.join(dir, 'out2') });
    expect(good.ok).toBe(true);
    expect(converter.stats().processesStarted).toBe(1);
  });
});

describe('one process per job', () => {
  it('converts through the binary and enforces the time limit from outside too', async () => {
    converter = createConverter({ mode: 'process', onOutput: () => undefined });
    const ok = await converter.convert({ input: stlSample('002.STL'), outputDir: path.join(tempDir(), 'out') });
    expect(ok.ok).toBe(true);
    const slow = await converter.convert({ input: BOMB, outputDir: path.join(tempDir(), 'out') }, { timeoutMs: 2000, maxMemoryMb: 16000 });
    expect(slow).toMatchObject({ ok: false, code: 'timeout' });
  });
});

describe("an operator's converter through a command template", () => {
  it('runs the command with the placeholders filled in and reads its result.json', async () => {
    converter = createConverter({ commandTemplate: `"${process.execPath}" ${BIN} --input {input} --output-dir {outputDir} --quality {quality}`, onOutput: () => undefined });
    const outputDir = path.join(tempDir(), 'out');
    const result = await converter.convert({ input: stlSample('box_2x3x4.stl'), outputDir, quality: 'coarse' });
    expect(result.ok, result.error).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(outputDir, 'manifest.json'), 'utf8')).quality).toBe('coarse');
  });

  it('kills a converter that hangs past the time limit', async () => {
    converter = createConverter({ commandTemplate: 'sleep 30', limits: { timeoutMs: 500 }, onOutput: () => undefined });
    const started = Date.now();
    const result = await converter.convert({ input: stlSample('002.STL'), outputDir: path.join(tempDir(), 'out') });
    expect(result).toMatchObject({ ok: false, code: 'timeout' });
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('says clearly when the command cannot be started', async () => {
    converter = createConverter({ commandTemplate: '/opt/vendor/missing-converter --in {input}', onOutput: () => undefined });
    const result = await converter.convert({ input: stlSample('002.STL'), outputDir: path.join(tempDir(), 'out') });
    expect(result).toMatchObject({ ok: false, code: 'crashed' });
    expect(result.error).toMatch(/could not be started: .*ENOENT/);
  });

  it('refuses an empty template at creation', () => {
    expect(() => createConverter({ commandTemplate: '   ' })).toThrow(/template is empty/);
  });
});
