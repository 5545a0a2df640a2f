// Bundles the TypeScript entry points into dist/. Runs on `npm ci` (prepare) and `npm run build`.
// Packages stay external: the converter's WebAssembly libraries load their .wasm files from
// their own package folders.
import { build } from 'esbuild';
import { buildNative } from './build-native.mjs';

const common = {
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __cadfleetCreateRequire } from 'node:module'; const require = __cadfleetCreateRequire(import.meta.url);",
  },
};

// The app's entry points, as this machine runs them (the release bundles its own build).
await build({
  ...common,
  entryPoints: { 'cadfleet-convert': 'app/src/converter/cli.ts', 'cadfleet-service': 'app/src/main.ts' },
  packages: 'external',
});

// The CLI with its packages in one file: a command starts in about half the CPU time of one that
// resolves and loads some thirty packages from node_modules (the AWS SDK, cdktf, zx, execa, ...),
// and the test tiers start it a few hundred times. What cannot be bundled stays a package: esbuild
// (a native binary), the WebAssembly engines (their .wasm is loaded from beside their .js; the
// release's WASM_PACKAGES in cli/src/release/bundle.ts), pg's optional native binding.
await build({
  ...common,
  entryPoints: { cadfleet: 'cli/src/main.ts' },
  external: ['esbuild', 'occt-import-js', 'assimpjs', 'web-ifc', 'pg-native'],
  // glTF-Transform's texture helpers load sharp (a native module) at import; the converter never
  // touches textures, and the browser build of the same helper needs no native code (as the release).
  alias: { 'ndarray-pixels': './node_modules/ndarray-pixels/dist/ndarray-pixels-browser.js' },
});

// The native B-rep engine of the converter (C++ against Debian's OpenCASCADE).
buildNative();

// The viewer: a static page the api serves in single-machine mode and nginx on the LB in a fleet.
const { buildViewer } = await import('../viewer/build.mjs');
await buildViewer({ outdir: 'dist/viewer' });
