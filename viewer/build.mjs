// Builds the viewer (a static page) into a directory: index.html, style.css and app.js (three.js
// and the viewer in one ES module). `npm run build` writes dist/viewer; the release bundle
// can call buildViewer() with its own directory (nginx on the LB serves <release>/viewer).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @param {{ outdir: string }} options */
export async function buildViewer({ outdir }) {
  fs.mkdirSync(outdir, { recursive: true });
  await build({
    entryPoints: { app: path.join(here, 'src/main.ts') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome110', 'firefox110', 'safari16'],
    minify: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'style.css']) fs.copyFileSync(path.join(here, file), path.join(outdir, file));
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await buildViewer({ outdir: process.argv[2] ?? path.join(here, '..', 'dist', 'viewer') });
}
