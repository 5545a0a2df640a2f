// What this machine's cores give the converter, with no fleet around it: warm converter pools
// (the worker's own converter) converting the same file, one alone and then two side by side.
// The fleet's one-worker-host vs two figure is read against this: two converters on a
// machine whose cores share caches and memory bandwidth do not convert twice as fast, whatever
// the fleet does.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createConverter } from '../app/src/converter/index';

export interface ConverterScaling {
  /** Conversions per minute: one warm converter, and two side by side (both together). */
  one: number;
  two: number;
  ratio: number;
}

export async function converterScaling(input: string, jobsPerConverter = 10, rounds = 2): Promise<ConverterScaling> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cadfleet-scaling-'));
  const rate = async (converters: number): Promise<number> => {
    const pools = Array.from({ length: converters }, () => createConverter({ mode: 'pool', poolSize: 1, onOutput: () => undefined }));
    try {
      await Promise.all(pools.map((p) => p.warmUp()));
      const started = performance.now();
      await Promise.all(
        pools.map(async (p, j) => {
          for (let i = 0; i < jobsPerConverter; i++) {
            const result = await p.convert({ input, outputDir: path.join(dir, `${converters}-${j}-${i}`) });
            if (!result.ok) throw new Error(`the converter failed on ${input}: ${result.error}`);
          }
        }),
      );
      return ((converters * jobsPerConverter) / ((performance.now() - started) / 1000)) * 60;
    } finally {
      await Promise.all(pools.map((p) => p.close()));
    }
  };
  const ones: number[] = [];
  const twos: number[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      ones.push(await rate(1));
      twos.push(await rate(2));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const best = (xs: number[]): number => Math.max(...xs);
  return { one: best(ones), two: best(twos), ratio: best(twos) / best(ones) };
}
