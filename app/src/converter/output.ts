import fs from 'node:fs/promises';
import path from 'node:path';

export const OUTPUT_FILES = ['model.glb', 'manifest.json', 'result.json'] as const;
export type OutputFile = (typeof OUTPUT_FILES)[number];

/**
 * Writes DIR/name through a fresh temporary file and a rename, so a reader never sees half a
 * file and a planted symlink at DIR/name is replaced rather than followed out of DIR.
 */
export async function writeOutput(dir: string, name: OutputFile, data: Uint8Array | string): Promise<number> {
  const tmp = path.join(dir, `.${name}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const handle = await fs.open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, path.join(dir, name));
  return typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
}

/** Removes the outputs of an earlier run, so a failed run never leaves a stale model beside its error. */
export async function clearOutputs(dir: string): Promise<void> {
  await Promise.all(OUTPUT_FILES.map((name) => fs.rm(path.join(dir, name), { force: true })));
}
