import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { occtLibraryLinks } from '../../app/src/converter/export/brep';
import { tempDir } from './convert';

/**
 * A synthetic STEP assembly written by OpenCASCADE with the bench's own generator
 * (bench/assembly.tcl): `parts` parts on a grid 60 mm apart, each a plate with a bore and a boss
 * and a torus above it; `instanced`: one part placed `parts` times.
 */
export function assembly(parts: number, instanced: boolean): string {
  const out = path.join(tempDir('cadfleet-assembly-'), `${instanced ? 'instanced' : 'distinct'}-${parts}.stp`);
  const env = { ...process.env, LD_LIBRARY_PATH: occtLibraryLinks(path.join(os.tmpdir(), 'cadfleet-test-occt')), PARTS: String(parts), INSTANCED: instanced ? '1' : '0', OUT: out };
  const r = spawnSync('occt-draw', ['-b', '-f', path.resolve('bench/assembly.tcl')], { env, encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`occt-draw could not write the test assembly (install it: bash scripts/setup.sh): ${r.error?.message ?? r.stdout.slice(-500)}`);
  }
  return out;
}
