// The README's main command, for now: convert real CAD samples on this machine with the warm
// converter pool and say where the results are. Later the demo brings up the service and the fleet.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const samples = [
  'node_modules/occt-import-js/test/testfiles/cax-if/as1-oc-214.stp',
  'node_modules/occt-import-js/test/testfiles/cax-if/dm1-id-214.stp',
  'node_modules/occt-import-js/test/testfiles/cube-10x10mm/Cube 10x10.igs',
  'node_modules/occt-import-js/test/testfiles/cax-if-brep/as1_pe_203.brep',
  '/usr/share/assimp/models/IFC/AC14-FZK-Haus.ifc',
  '/usr/share/assimp/models/Collada/duck.dae',
  '/usr/share/assimp/models/PLY/Wuson.ply',
  'node_modules/node-stl/test/test_data/Pterosaur_FDM.stl',
];
const missing = samples.filter((file) => !fs.existsSync(file));
if (missing.length) {
  console.error(`demo: missing samples: ${missing.join(', ')}\nRun the set-up first: bash scripts/setup.sh`);
  process.exit(1);
}
const out = path.resolve('out/demo');
console.log(`Converting ${samples.length} real CAD and mesh files with cadfleet-convert...\n`);
const run = spawnSync(process.execPath, ['bin/cadfleet.js', 'convert', ...samples, '--out', out, '--jobs', '2'], { stdio: 'inherit' });
if (run.status !== 0) process.exit(run.status ?? 1);
console.log(`\nResults are in ${out}: one folder per file, each with model.glb, manifest.json and result.json.`);
console.log('Open a model.glb in any glTF viewer that supports EXT_meshopt_compression (three.js, Babylon.js, gltf.report).');
