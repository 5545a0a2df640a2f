import fs from 'node:fs';
import path from 'node:path';

const OCCT = 'node_modules/occt-import-js/test/testfiles';
const ASSIMP = '/usr/share/assimp/models';
const NODE_STL = 'node_modules/node-stl/test/test_data';

/** A real sample file, or a failure that says how to get it. */
export function sample(file: string): string {
  if (!fs.existsSync(file)) {
    const hint = file.startsWith(ASSIMP)
      ? 'install Debian\'s test models: apt-get install assimp-testmodels'
      : 'install the npm packages: npm ci';
    throw new Error(`sample ${file} is missing; ${hint}`);
  }
  return path.resolve(file);
}

export const cax = (name: string): string => sample(`${OCCT}/cax-if/${name}`);
export const occtSample = (name: string): string => sample(`${OCCT}/${name}`);
export const assimpSample = (name: string): string => sample(`${ASSIMP}/${name}`);
export const stlSample = (name: string): string => sample(`${NODE_STL}/${name}`);

/**
 * The single-file CAx-IF STEP models shipped with occt-import-js (the benchmark set too).
 * s1-c5-214 is left out: its parts are external references to other files.
 */
export const CAX_IF_STEP = [
  'as1-oc-214.stp',
  'as1-tu-203.stp',
  'as1_pe_203.stp',
  'dm1-id-214.stp',
  'dm1-oc-214.stp',
  'dm1-pe-214.stp',
  'io1-cm-214.stp',
  'io1-tu-203.stp',
  'sg1-c5-214.stp',
] as const;
