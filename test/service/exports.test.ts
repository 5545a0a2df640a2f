// Target formats through real processes (api, worker, PostgreSQL, Redis, s3rver) and real
// writers: STL, OBJ + MTL and a plain GLB from the converted model; STEP and IGES from the
// uploaded B-rep by OpenCASCADE. Round trips read the exports back with the converter.
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { unzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/convert';
import { type ApiClient, type AppProcess, type Harness, ROOT, SAMPLES, apiClient, eventually, startHarness } from './harness';

const validator = createRequire(import.meta.url)('gltf-validator') as {
  validateBytes(data: Uint8Array): Promise<{ issues: { numErrors: number; messages: Array<{ severity: number; message: string }> } }>;
};
const BREP = path.join(ROOT, 'node_modules/occt-import-js/test/testfiles/cax-if-brep/as1_pe_203.brep');

let h: Harness;
let api: AppProcess;
let client: ApiClient;
let worker: AppProcess;

beforeAll(async () => {
  h = await startHarness('exports');
  api = await h.start('api', { nodeId: 'api-1' });
  worker = await h.start('worker', { nodeId: 'worker-1' });
  client = apiClient(api.url, await h.createKey('acme'));
}, 120_000);

afterAll(async () => {
  await h?.stop();
});

async function upload(file: string, fields: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('file', new Blob([fs.readFileSync(file)]), path.basename(file));
  return client.json('POST', '/api/v1/models?reuse=false', { body: form });
}

interface ExportJson {
  format: string;
  attempts?: number;
  state: string;
  size?: number;
  triangles?: number;
  error?: string;
  errorCode?: string;
  url?: string;
}

async function exportsReady(id: string, formats: string[]): Promise<Record<string, ExportJson>> {
  return eventually(async () => {
    const r = await client.json<{ exports: ExportJson[] }>('GET', `/api/v1/models/${id}/exports`);
    const byFormat = Object.fromEntries(r.body.exports.map((e) => [e.format, e]));
    return formats.every((f) => byFormat[f] && ['ready', 'failed'].includes(byFormat[f]!.state)) ? byFormat : undefined;
  }, `exports ${formats.join(', ')} of ${id}`, 60_000);
}

async function download(id: string, format: string): Promise<Buffer> {
  const r = await client.json<ExportJson & { expiresAt: string }>('GET', `/api/v1/models/${id}/exports/${format}`);
  expect(r.body.state).toBe('ready');
  expect(r.body.url).toMatch(/^https?:\/\//);
  const file = await fetch(r.body.url!);
  expect(file.status).toBe(200);
  return Buffer.from(await file.arrayBuffer());
}

/** Reads a file back with the converter: its part count, triangles and bounding box. */
async function readBack(name: string, bytes: Buffer): Promise<{ parts: number; triangles: number; bbox: { min: number[]; max: number[] } }> {
  const dir = tempDir('cadfleet-roundtrip-');
  const input = path.join(dir, name);
  fs.writeFileSync(input, bytes);
  const { execFileSync } = await import('node:child_process');
  execFileSync(process.execPath, [path.join(ROOT, 'bin/cadfleet-convert.js'), '--input', input, '--output-dir', path.join(dir, 'out')], { stdio: 'ignore' });
  const result = JSON.parse(fs.readFileSync(path.join(dir, 'out/result.json'), 'utf8')) as { stats: { parts: number; triangles: number } };
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'out/manifest.json'), 'utf8')) as { bbox: { min: number[]; max: number[] } };
  return { parts: result.stats.parts, triangles: result.stats.triangles, bbox: manifest.bbox };
}

const closeTo = (a: number[], b: number[], tolerance: number): boolean => a.every((v, i) => Math.abs(v - b[i]!) <= tolerance);

describe('target formats', () => {
  let stepId = '';
  let model: Record<string, unknown> = {};

  it('makes STEP, IGES, STL, OBJ and GLB from a STEP assembly uploaded with targets', async () => {
    const up = await upload(SAMPLES.assembly, { targets: 'step,iges,stl,obj,glb' });
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    expect((up.body.exports as ExportJson[]).map((e) => e.format).sort()).toEqual(['glb', 'iges', 'obj', 'step', 'stl']);
    stepId = String(up.body.id);
    model = await client.waitForState(stepId, ['ready', 'failed']);
    expect(model.state).toBe('ready');
    const exports = await exportsReady(stepId, ['step', 'iges', 'stl', 'obj', 'glb']);
    for (const e of Object.values(exports)) expect(e.state, `${e.format}: ${e.error}`).toBe('ready');
  });

  it('round-trips the STEP: read back, the same part count and bounding box', async () => {
    const original = JSON.parse(
      Buffer.from(await (await client.request('GET', `/api/v1/models/${stepId}/files/manifest.json`)).arrayBuffer()).toString('utf8'),
    ) as { bbox: { min: number[]; max: number[] } };
    const stats = model.stats as { parts: number; triangles: number };
    const step = await readBack('export.step', await download(stepId, 'step'));
    expect(step.parts).toBe(stats.parts);
    expect(closeTo(step.bbox.min, original.bbox.min, 0.01) && closeTo(step.bbox.max, original.bbox.max, 0.01), JSON.stringify({ step: step.bbox, original: original.bbox })).toBe(true);
    // IGES has no assembly structure to carry the same way; its geometry must be the same.
    const iges = await readBack('export.iges', await download(stepId, 'iges'));
    expect(closeTo(iges.bbox.min, original.bbox.min, 0.01) && closeTo(iges.bbox.max, original.bbox.max, 0.01)).toBe(true);
  });

  it("writes an STL with the model's triangle count, an OBJ with its MTL, and a GLB that any reader opens", async () => {
    const triangles = (model.stats as { triangles: number }).triangles;
    const stl = await download(stepId, 'stl');
    expect(stl.readUInt32LE(80)).toBe(triangles);
    expect(stl.length).toBe(84 + triangles * 50);

    const files = unzipSync(await download(stepId, 'obj'));
    expect(Object.keys(files).sort()).toEqual(['model.mtl', 'model.obj']);
    const obj = Buffer.from(files['model.obj']!).toString('utf8');
    expect(obj).toContain('mtllib model.mtl');
    expect(obj.split('\n').filter((l) => l.startsWith('f ')).length).toBe(triangles);
    expect(Buffer.from(files['model.mtl']!).toString('utf8')).toMatch(/^Kd \d/m);

    const glb = await download(stepId, 'glb');
    const report = await validator.validateBytes(new Uint8Array(glb));
    expect(report.issues.numErrors, JSON.stringify(report.issues.messages.filter((m) => m.severity === 0))).toBe(0);
    const json = JSON.parse(glb.subarray(20, 20 + glb.readUInt32LE(12)).toString('utf8')) as { extensionsUsed?: string[] };
    expect(json.extensionsUsed ?? []).not.toContain('EXT_meshopt_compression');
  });

  it('makes STL, OBJ and GLB from a mesh upload asked for later, and refuses STEP for it with the reason', async () => {
    const up = await upload(SAMPLES.stlBox, {});
    const id = String(up.body.id);
    const ready = await client.waitForState(id, ['ready']);
    const refused = await client.json('POST', `/api/v1/models/${id}/exports`, { body: JSON.stringify({ targets: ['step'] }), headers: { 'content-type': 'application/json' } });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'target_not_applicable' });
    expect(String(refused.body.message)).toMatch(/STEP needs a B-rep model/);
    const atUpload = await upload(SAMPLES.stlBox, { targets: 'stl,iges' });
    expect(atUpload.status).toBe(400);
    expect(atUpload.body).toMatchObject({ code: 'target_not_applicable' });
    expect((await upload(SAMPLES.stlBox, { targets: 'dwg' })).body).toMatchObject({ code: 'invalid_target' });

    const asked = await client.json<{ exports: ExportJson[] }>('POST', `/api/v1/models/${id}/exports`, { body: JSON.stringify({ targets: ['stl', 'obj', 'glb'] }), headers: { 'content-type': 'application/json' } });
    expect(asked.status).toBe(202);
    const exports = await exportsReady(id, ['stl', 'obj', 'glb']);
    expect(exports.stl).toMatchObject({ state: 'ready', triangles: (ready.stats as { triangles: number }).triangles });
    const stl = await download(id, 'stl');
    expect(stl.readUInt32LE(80)).toBe(12);
  });

  it('makes a STEP from a BREP upload', async () => {
    const up = await upload(BREP, { targets: 'step' });
    expect(up.status, JSON.stringify(up.body)).toBe(201);
    await client.waitForState(String(up.body.id), ['ready']);
    const exports = await exportsReady(String(up.body.id), ['step']);
    expect(exports.step!.state, exports.step!.error).toBe('ready');
    const back = await readBack('as1_pe_203.step', await download(String(up.body.id), 'step'));
    const converted = (await client.json<{ stats: { triangles: number } }>('GET', `/api/v1/models/${String(up.body.id)}`)).body.stats;
    expect(back.triangles).toBeGreaterThan(converted.triangles * 0.9);
  });

  it('makes STEP and STL from an IGES upload, and the mesh targets from an IFC building', async () => {
    const igesFile = path.join(tempDir('cadfleet-iges-'), 'cube.igs');
    fs.copyFileSync(path.join(ROOT, 'node_modules/occt-import-js/test/testfiles/cube-10x10mm/Cube 10x10.igs'), igesFile);
    const iges = await upload(igesFile, { targets: 'step,stl' });
    expect(iges.status, JSON.stringify(iges.body)).toBe(201);
    const igesModel = await client.waitForState(String(iges.body.id), ['ready']);
    const igesExports = await exportsReady(String(iges.body.id), ['step', 'stl']);
    expect([igesExports.step!.state, igesExports.stl!.state], JSON.stringify(igesExports)).toEqual(['ready', 'ready']);
    const back = await readBack('cube.step', await download(String(iges.body.id), 'step'));
    const igesBox = (JSON.parse(Buffer.from(await (await client.request('GET', `/api/v1/models/${String(iges.body.id)}/files/manifest.json`)).arrayBuffer()).toString('utf8')) as { bbox: { min: number[]; max: number[] } }).bbox;
    expect(closeTo(back.bbox.min, igesBox.min, 0.01) && closeTo(back.bbox.max, igesBox.max, 0.01)).toBe(true);
    expect(igesExports.stl!.triangles).toBe((igesModel.stats as { triangles: number }).triangles);

    const ifc = '/usr/share/assimp/models/IFC/AC14-FZK-Haus.ifc';
    if (!fs.existsSync(ifc)) throw new Error(`${ifc} is missing: install Debian's assimp-testmodels (scripts/setup.sh does)`);
    expect((await upload(ifc, { targets: 'step' })).body).toMatchObject({ code: 'target_not_applicable' });
    const house = await upload(ifc, { targets: 'stl,obj,glb' });
    const houseModel = await client.waitForState(String(house.body.id), ['ready'], { timeoutMs: 120_000 });
    const houseExports = await exportsReady(String(house.body.id), ['stl', 'obj', 'glb']);
    for (const e of Object.values(houseExports)) expect(e.state, `${e.format}: ${e.error}`).toBe('ready');
    expect(houseExports.stl!.triangles).toBe((houseModel.stats as { triangles: number }).triangles);
  });

  it('refuses a target on a failed model, and fails the targets that waited for it', async () => {
    const bad = path.join(tempDir('cadfleet-bad-'), 'broken.stp');
    fs.writeFileSync(bad, 'ISO-10303-21;\nHEADER;\nENDSEC;\nDATA;\n#1=GARBAGE;\nENDSEC;\nEND-ISO-10303-21;\n');
    const up = await upload(bad, { targets: 'stl' });
    expect(up.status).toBe(201);
    const failed = await client.waitForState(String(up.body.id), ['ready', 'failed']);
    expect(failed.state).toBe('failed');
    const waiting = await exportsReady(String(up.body.id), ['stl']);
    expect(waiting.stl).toMatchObject({ state: 'failed', errorCode: 'model-failed' });
    const asked = await client.json('POST', `/api/v1/models/${String(up.body.id)}/exports`, { body: JSON.stringify({ targets: ['stl'] }), headers: { 'content-type': 'application/json' } });
    expect(asked.status).toBe(409);
    expect(asked.body).toMatchObject({ code: 'model_failed' });
  });
});

describe('an export over its time limit', () => {
  it('fails cleanly with the reason (no retry), and the worker goes on converting', async () => {
    await worker.stop();
    const slow = await h.start('worker', { nodeId: 'worker-slow', env: { CADFLEET_EXPORT_TIMEOUT_MS: '100' } });
    try {
      const up = await upload(SAMPLES.assembly, { targets: 'step' });
      const id = String(up.body.id);
      await client.waitForState(id, ['ready']);
      const exports = await exportsReady(id, ['step']);
      expect(exports.step).toMatchObject({ state: 'failed', errorCode: 'timeout', attempts: 1 });
      expect(exports.step!.error).toMatch(/took longer than the limit of 0.1 s/);
      expect(slow.alive()).toBe(true);
      const next = await upload(SAMPLES.cube, {});
      expect((await client.waitForState(String(next.body.id), ['ready', 'failed'])).state).toBe('ready');
      // Asked again on a worker with the normal limit, the failed export runs anew and is made.
      await slow.stop();
      worker = await h.start('worker', { nodeId: 'worker-2' });
      const again = await client.json('POST', `/api/v1/models/${id}/exports`, { body: JSON.stringify({ targets: ['step'] }), headers: { 'content-type': 'application/json' } });
      expect(again.status).toBe(202);
      await eventually(async () => (await client.json<ExportJson>('GET', `/api/v1/models/${id}/exports/step`)).body.state === 'ready', 'the export made on the second request', 60_000);
    } finally {
      if (slow.alive()) await slow.stop();
    }
  });
});
