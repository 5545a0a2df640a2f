// Bundles the TypeScript entry points into dist/. Runs on `npm ci` (prepare) and `npm run build`.
// Packages stay external: the converter's WebAssembly libraries load their .wasm files from
// their own package folders.
import { build } from 'esbuild';

const entries = {
  'cadfleet-convert': 'app/src/converter/cli.ts',
  cadfleet: 'cli/src/main.ts',
  'cadfleet-service': 'app/src/main.ts',
};

await build({
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  sourcemap: 'linked',
  logLevel: 'warning',
  banner: {
    js: "import { createRequire as __cadfleetCreateRequire } from 'node:module'; const require = __cadfleetCreateRequire(import.meta.url);",
  },
});

// The viewer: a static page the api serves in single-machine mode and nginx on the LB in a fleet.
const { buildViewer } = await import('../viewer/build.mjs');
await buildViewer({ outdir: 'dist/viewer' });
