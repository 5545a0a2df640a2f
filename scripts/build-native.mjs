// Builds the native B-rep engine (app/native/cadfleet-occt.cpp) against Debian's OpenCASCADE 7.6:
// g++ and the libocct-*-dev packages, which scripts/setup.sh installs. The binary goes to
// dist/native/, and the release bundle copies it from there (cli/src/release/bundle.ts). It is
// rebuilt only when the source or this script is newer than the binary.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const NATIVE_SOURCE = path.join(root, 'app/native/cadfleet-occt.cpp');
export const NATIVE_OUTPUT = path.join(root, 'dist/native/cadfleet-occt');
const OCCT_INCLUDE = '/usr/include/opencascade';

// The OpenCASCADE toolkits it links, each a shared library of the libocct-*-7.6 runtime packages.
const TOOLKITS = [
  'TKernel', 'TKMath', 'TKG2d', 'TKG3d', 'TKGeomBase', 'TKBRep', 'TKTopAlgo', 'TKMesh',
  'TKXSBase', 'TKSTEP', 'TKIGES', 'TKXDESTEP', 'TKXDEIGES', 'TKLCAF', 'TKCAF', 'TKCDF',
  'TKXCAF', 'TKRWMesh', 'TKService', 'TKV3d',
];

const newer = (a, b) => fs.statSync(a).mtimeMs > fs.statSync(b).mtimeMs;

/** Builds the binary if it is missing or older than its source; returns its path. */
export function buildNative({ output = NATIVE_OUTPUT, log = (line) => process.stderr.write(`${line}\n`) } = {}) {
  const self = fileURLToPath(import.meta.url);
  if (fs.existsSync(output) && !newer(NATIVE_SOURCE, output) && !newer(self, output)) return output;
  if (!fs.existsSync(path.join(OCCT_INCLUDE, 'STEPCAFControl_Reader.hxx'))) {
    throw new Error(
      `OpenCASCADE's headers are missing (${OCCT_INCLUDE}): the native B-rep engine needs libocct-data-exchange-dev and the other libocct-*-dev packages; run bash scripts/setup.sh`,
    );
  }
  fs.mkdirSync(path.dirname(output), { recursive: true });
  const started = performance.now();
  const temporary = `${output}.${process.pid}.tmp`;
  try {
    execFileSync(
      'g++',
      [
        '-std=c++17', '-O2', '-Wall', '-Wextra', '-Werror', '-Wno-deprecated-declarations',
        '-isystem', OCCT_INCLUDE, NATIVE_SOURCE, '-o', temporary,
        ...TOOLKITS.map((tk) => `-l${tk}`), '-pthread',
      ],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
  } catch (err) {
    fs.rmSync(temporary, { force: true });
    throw new Error(`g++ could not build ${path.relative(root, NATIVE_SOURCE)} (its messages are above): ${err.message}`);
  }
  fs.renameSync(temporary, output);
  log(`build: ${path.relative(root, output)} built in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return output;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) buildNative();
