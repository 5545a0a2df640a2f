import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import validator from 'gltf-validator';
import { afterAll } from 'vitest';
import type { Manifest } from '../../app/src/converter/manifest';
import type { ConvertResult } from '../../app/src/converter/types';

export const BIN = path.resolve('bin/cadfleet-convert.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  result: ConvertResult;
  outDir: string;
}

/** Folders tempDir made, removed after the test file that made them (vitest runs each file's
 * modules afresh, so this hook belongs to the file that imports this helper). */
const scratch: string[] = [];
afterAll(() => {
  for (const dir of scratch.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

/**
 * A new folder under the system's temporary folder, removed after the test file unless `keep`
 * (the fleet's state, which the fleet suite removes itself once the fleet is destroyed).
 */
export function tempDir(prefix = 'cadfleet-test-', { keep = false } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (!keep) scratch.push(dir);
  return dir;
}

/** Runs the real cadfleet-convert binary (with `env` added to this process's environment). */
export function runConvert(args: string[], outDir: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const file = path.join(outDir, 'result.json');
      const result = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as ConvertResult) : (undefined as unknown as ConvertResult);
      resolve({ code, stdout, stderr, result, outDir });
    });
  });
}

export function convertSample(input: string, extra: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  const outDir = path.join(tempDir(), 'out');
  return runConvert(['--input', input, '--output-dir', outDir, ...extra], outDir, env);
}

export function readManifest(outDir: string): Manifest {
  return JSON.parse(fs.readFileSync(path.join(outDir, 'manifest.json'), 'utf8')) as Manifest;
}

export interface Validation {
  numErrors: number;
  messages: Array<{ code: string; message: string; severity: number }>;
  info: { extensionsUsed?: string[] };
}

/** The Khronos glTF validator on a GLB. */
export async function validateGlb(file: string): Promise<Validation> {
  const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)));
  return { numErrors: report.issues.numErrors, messages: report.issues.messages, info: report.info };
}
